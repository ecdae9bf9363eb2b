// Package migrate reads a datastore into the file `calicoctl datastore
// migrate export` writes and parses that file back for `import`. The file
// is Calico's: the v3 resources as YAML lists (one per kind, each ended by
// "---"), a "===" line, the ClusterInformation as JSON, another "===" line,
// and the IPAM state (block affinities, blocks, handles, IPAM config) as
// JSON with each etcd key and its value. A file written by Calico's
// calicoctl imports here, and one written here imports into Calico.
//
//	Read(ctx, backend) ──► *Snapshot ── Write ──► file
//	file ── Parse ──► *File ── (validate, apply) ── WriteIPAM ──► backend
package migrate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"

	"github.com/calico-etcd/calico/calicoctl/internal/printer"
	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/cerrors"
	"github.com/calico-etcd/calico/libcalico/model"
)

// Order is the order in which the kinds are exported and so imported:
// Calico's (tiers before policies, nodes before what names nodes), then
// Profile and WorkloadEndpoint, which Calico's export leaves to
// Kubernetes and which an etcd-to-etcd move must carry.
var Order = []string{
	v3.KindIPPool, v3.KindBGPPeer, v3.KindTier, v3.KindGlobalNetworkPolicy, v3.KindStagedGlobalNetworkPolicy,
	v3.KindGlobalNetworkSet, v3.KindHostEndpoint, v3.KindNetworkPolicy,
	v3.KindStagedNetworkPolicy, v3.KindStagedKubernetesNetworkPolicy,
	v3.KindNetworkSet, v3.KindNode, v3.KindBGPConfiguration,
	v3.KindFelixConfiguration, v3.KindIPReservation, v3.KindBGPFilter,
	v3.KindProfile, v3.KindWorkloadEndpoint,
}

// Separator is the line between the file's three parts.
const Separator = "==="

// KV is one IPAM key and value, as Calico's export writes it.
type KV struct {
	Key   string          `json:"Key"`
	Value json.RawMessage `json:"Value"`
	// TTL is Calico's time.Duration in nanoseconds; IPAM keys have none
	// and import ignores it.
	TTL int64 `json:"TTL"`
}

// IPAM is the file's third part.
type IPAM struct {
	BlockAffinities []KV `json:"block_affinities,omitempty"`
	Blocks          []KV `json:"blocks,omitempty"`
	Handles         []KV `json:"handles,omitempty"`
	Config          *KV  `json:"config,omitempty"`
}

// Len is the number of IPAM keys.
func (i *IPAM) Len() int {
	n := len(i.BlockAffinities) + len(i.Blocks) + len(i.Handles)
	if i.Config != nil {
		n++
	}
	return n
}

// Snapshot is everything export writes, read at one revision.
type Snapshot struct {
	Revision int64
	// Resources holds each kind of Order, in key order.
	Resources   map[string][]v3.Resource
	ClusterInfo *v3.ClusterInformation
	IPAM        IPAM
	// Skipped are the values left out because they do not decode.
	Skipped []*cerrors.Corrupt
}

// Read takes a snapshot of the resources and the IPAM state at one
// revision. Values that do not decode are left out and listed in
// Skipped; keys this calicoctl does not know are not read at all.
func Read(ctx context.Context, be backend.Client) (*Snapshot, error) {
	res, ipam, rev, err := listBoth(ctx, be)
	if err != nil {
		return nil, err
	}
	s := &Snapshot{Revision: rev, Resources: map[string][]v3.Resource{}}
	for _, kv := range res {
		v, err := model.Decode(kv.Key, kv.Value, kv.Revision)
		if err != nil {
			if c := corrupt(err); c != nil {
				s.Skipped = append(s.Skipped, c)
				continue
			}
			return nil, err
		}
		r := v.(v3.Resource)
		if ci, ok := r.(*v3.ClusterInformation); ok {
			if ci.Name == "default" {
				s.ClusterInfo = ci
			}
			continue
		}
		StripMetadata(r)
		kind := r.GetTypeMeta().Kind
		s.Resources[kind] = append(s.Resources[kind], r)
	}
	for _, kv := range ipam {
		if _, err := model.Decode(kv.Key, kv.Value, 0); err != nil {
			if c := corrupt(err); c != nil {
				s.Skipped = append(s.Skipped, c)
				continue
			}
			return nil, err
		}
		path, err := kv.Key.Path()
		if err != nil {
			return nil, err
		}
		e := KV{Key: path, Value: json.RawMessage(kv.Value)}
		switch kv.Key.(type) {
		case model.BlockAffinityKey:
			s.IPAM.BlockAffinities = append(s.IPAM.BlockAffinities, e)
		case model.BlockKey:
			s.IPAM.Blocks = append(s.IPAM.Blocks, e)
		case model.HandleKey:
			s.IPAM.Handles = append(s.IPAM.Handles, e)
		case model.IPAMConfigKey:
			s.IPAM.Config = &e
		}
	}
	return s, nil
}

func corrupt(err error) *cerrors.Corrupt {
	var c *cerrors.Corrupt
	if errors.As(err, &c) {
		return c
	}
	return nil
}

// listBoth lists the resources and the IPAM keys at one revision.
func listBoth(ctx context.Context, be backend.Client) (res, ipam []*backend.KVPair, rev int64, err error) {
	resOpts, ipamOpts := model.PrefixListOptions{Path: model.ResourcesRoot}, model.PrefixListOptions{Path: model.IPAMRoot}
	if tx, ok := be.(backend.Transactor); ok {
		r, err := tx.Read(ctx, backend.Linearizable, []backend.ReadOp{{List: resOpts}, {List: ipamOpts}})
		if err != nil {
			return nil, nil, 0, err
		}
		return r.Results[0], r.Results[1], r.Revision, nil
	}
	rl, err := be.List(ctx, resOpts)
	if err != nil {
		return nil, nil, 0, err
	}
	il, err := be.List(ctx, ipamOpts)
	if err != nil {
		return nil, nil, 0, err
	}
	return rl.KVPairs, il.KVPairs, rl.Revision, nil
}

// StripMetadata removes what belongs to one datastore only, as Calico's
// export does: uid, resourceVersion, creation and deletion times.
func StripMetadata(r v3.Resource) {
	m := r.GetObjectMeta()
	m.UID, m.ResourceVersion = "", ""
	m.CreationTimestamp = v3.Time{}
	m.DeletionTimestamp, m.DeletionGracePeriodSeconds = nil, nil
}

// Write writes the snapshot in the export format. It fails if there is
// no ClusterInformation to write.
func (s *Snapshot) Write(w io.Writer) error {
	if s.ClusterInfo == nil {
		return errors.New("the datastore has no ClusterInformation default")
	}
	var b bytes.Buffer
	kinds := slices.Clone(Order)
	for _, k := range slices.Sorted(maps.Keys(s.Resources)) {
		if !slices.Contains(kinds, k) {
			kinds = append(kinds, k) // a kind Order does not know yet
		}
	}
	for _, kind := range kinds {
		l := printer.NewList(kind, strconv.FormatInt(s.Revision, 10))
		l.Items = append(l.Items, s.Resources[kind]...)
		if err := (printer.YAML{}).Print(&b, []any{l}); err != nil {
			return fmt.Errorf("writing the %s resources: %w", kind, err)
		}
		b.WriteString("---\n")
	}
	b.WriteString(Separator + "\n")
	ci, err := json.MarshalIndent(s.ClusterInfo, "", "  ")
	if err != nil {
		return err
	}
	b.Write(ci)
	b.WriteString("\n" + Separator + "\n")
	ipam, err := json.MarshalIndent(&s.IPAM, "", "  ")
	if err != nil {
		return err
	}
	b.Write(ipam)
	b.WriteString("\n")
	_, err = w.Write(b.Bytes())
	return err
}
