// Package images builds the lab's container images from its own static
// binary (labnet), so that a lab needs no registry: the pod sandbox image
// and the test workload image, written as one image tarball that
// `ctr images import` loads into each host's containerd.
package images

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"runtime"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Image names; pods name Workload with imagePullPolicy IfNotPresent or
// Never, as nothing can be pulled.
const (
	Pause    = "lab.local/pause:3.10"
	Workload = "lab.local/labnet:1"
)

// Write builds both images from the labnet binary at bin and writes them
// to the tarball out.
func Write(bin, out string) error {
	data, err := os.ReadFile(bin)
	if err != nil {
		return fmt.Errorf("reading labnet: %w", err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "labnet", Mode: 0o755, Size: int64(len(data)), ModTime: time.Unix(0, 0)}); err != nil {
		return err
	}
	if _, err := tw.Write(data); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil })
	if err != nil {
		return err
	}
	base, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return err
	}
	refs := map[name.Reference]v1.Image{}
	for ref, cmd := range map[string][]string{Pause: {"/labnet", "pause"}, Workload: {"/labnet", "serve"}} {
		img, err := mutate.Config(base, v1.Config{Entrypoint: cmd})
		if err != nil {
			return err
		}
		img, err = mutate.ConfigFile(img, withPlatform(img))
		if err != nil {
			return err
		}
		r, err := name.ParseReference(ref)
		if err != nil {
			return err
		}
		refs[r] = img
	}
	return tarball.MultiRefWriteToFile(out, refs)
}

// withPlatform returns img's config file marked with this platform, which
// containerd's CRI requires of an image it runs.
func withPlatform(img v1.Image) *v1.ConfigFile {
	cf, err := img.ConfigFile()
	if err != nil || cf == nil {
		cf = &v1.ConfigFile{}
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = runtime.GOOS, runtime.GOARCH
	return cf
}
