package diags

import (
	"archive/tar"
	"compress/gzip"
	"fmt"
	"os"
	"path"
	"time"
)

// Archive writes a tar.gz bundle whose files all sit under one directory.
// Every file is passed through Redact before it is written.
type Archive struct {
	path, dir string
	now       time.Time
	f         *os.File
	gz        *gzip.Writer
	tw        *tar.Writer
}

// Create starts the bundle at path, which must not exist yet; its files
// go under dir/.
func Create(path, dir string, now time.Time) (*Archive, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("creating diagnostics bundle: %w", err)
	}
	gz := gzip.NewWriter(f)
	return &Archive{path: path, dir: dir, now: now, f: f, gz: gz, tw: tar.NewWriter(gz)}, nil
}

// Add writes one file, redacted, under the bundle's directory.
func (a *Archive) Add(name string, data []byte) error {
	data = Redact(data)
	hdr := &tar.Header{Name: path.Join(a.dir, name), Mode: 0o644, Size: int64(len(data)), ModTime: a.now, Typeflag: tar.TypeReg}
	if err := a.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if _, err := a.tw.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	return nil
}

// Close finishes the bundle; if that fails the file is removed.
func (a *Archive) Close() error {
	err := a.tw.Close()
	if gerr := a.gz.Close(); err == nil {
		err = gerr
	}
	if ferr := a.f.Close(); err == nil {
		err = ferr
	}
	if err != nil {
		_ = os.Remove(a.path)
		return fmt.Errorf("writing diagnostics bundle: %w", err)
	}
	return nil
}

// Abort gives up: the file is closed and removed.
func (a *Archive) Abort() {
	_ = a.f.Close()
	_ = os.Remove(a.path)
}
