package migrate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"

	"sigs.k8s.io/yaml"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/model"
)

// Parts are the three parts of an export file.
type Parts struct {
	// Resources is the YAML of the v3 resources; it starts the file, so
	// its line numbers are the file's.
	Resources []byte
	// ClusterInfo and IPAM are the JSON parts.
	ClusterInfo, IPAM []byte
}

// Split cuts an export file at its "===" lines; there must be exactly two.
func Split(data []byte) (*Parts, error) {
	var parts [][]byte
	start := 0
	for i := 0; i <= len(data); {
		end := bytes.IndexByte(data[i:], '\n')
		next := len(data) + 1
		if end >= 0 {
			end += i
			next = end + 1
		} else {
			end = len(data)
		}
		if string(bytes.TrimRight(data[i:end], "\r")) == Separator {
			parts = append(parts, data[start:i])
			start = min(next, len(data))
		}
		i = next
	}
	parts = append(parts, data[start:])
	if len(parts) != 3 {
		return nil, fmt.Errorf("it has %d %q separator lines, not 2", len(parts)-1, Separator)
	}
	return &Parts{Resources: parts[0], ClusterInfo: parts[1], IPAM: parts[2]}, nil
}

var topKindRe = regexp.MustCompile(`(?m)^kind:[ \t]*"?([A-Za-z0-9]+)List"?[ \t]*\r?$`)

// DropUnknownLists blanks the documents of the YAML part that are lists
// of kinds this calicoctl does not have (Calico's export also writes
// StagedGlobalNetworkPolicyList, KubeControllersConfigurationList, ...)
// when they are empty, keeping the line count so that errors name the
// file's lines. It returns the kinds dropped; a non-empty list of an
// unknown kind is an error.
func DropUnknownLists(data []byte) ([]byte, []string, error) {
	lines := bytes.SplitAfter(data, []byte("\n"))
	var out bytes.Buffer
	var dropped []string
	flush := func(doc [][]byte) error {
		text := bytes.Join(doc, nil)
		m := topKindRe.FindSubmatch(text)
		if m == nil {
			out.Write(text)
			return nil
		}
		elem := string(m[1])
		if _, err := v3.New(elem); err == nil {
			out.Write(text)
			return nil
		}
		var l struct {
			Items []json.RawMessage `json:"items"`
		}
		if err := yaml.Unmarshal(text, &l); err != nil {
			out.Write(text) // the resource parser words the error
			return nil
		}
		if len(l.Items) > 0 {
			return fmt.Errorf("the file holds %d %s resource(s): this calicoctl does not support kind %s", len(l.Items), elem, elem)
		}
		dropped = append(dropped, elem)
		for _, l := range doc {
			if bytes.HasSuffix(l, []byte("\n")) {
				out.WriteByte('\n')
			}
		}
		return nil
	}
	var doc [][]byte
	for _, l := range lines {
		if t := bytes.TrimRight(l, " \t\r\n"); bytes.Equal(t, []byte("---")) {
			if err := flush(doc); err != nil {
				return nil, nil, err
			}
			doc = nil
			out.Write(l)
			continue
		}
		doc = append(doc, l)
	}
	if err := flush(doc); err != nil {
		return nil, nil, err
	}
	return out.Bytes(), dropped, nil
}

// ParseClusterInfo reads the ClusterInformation part.
func ParseClusterInfo(data []byte) (*v3.ClusterInformation, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil, errors.New("the ClusterInformation part is empty")
	}
	r, err := v3.DecodeLenient(v3.KindClusterInformation, data)
	if err != nil {
		return nil, err
	}
	return r.(*v3.ClusterInformation), nil
}

// Entry is one IPAM key and value, checked.
type Entry struct {
	Key model.Key
	// Value is the compact JSON to store.
	Value []byte
}

// ParseIPAM reads and checks the IPAM part: every key is an IPAM key of
// its section, appears once, and its value decodes (a block's CIDR is
// its key's). Entries come in Calico's order: affinities, blocks,
// handles, config.
func ParseIPAM(data []byte) ([]Entry, error) {
	var in IPAM
	dec := json.NewDecoder(bytes.NewReader(bytes.TrimSpace(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("unexpected data after the IPAM object")
	}
	var out []Entry
	seen := map[string]bool{}
	add := func(section, what string, i int, kv KV, want func(model.Key) bool) error {
		where := fmt.Sprintf("%s[%d]", section, i)
		if section == "config" {
			where = section
		}
		k := model.ParseKey(kv.Key)
		if k == nil || !want(k) {
			return fmt.Errorf("%s: key %q is not the key of an IPAM %s", where, kv.Key, what)
		}
		if seen[kv.Key] {
			return fmt.Errorf("%s: key %s appears twice", where, kv.Key)
		}
		seen[kv.Key] = true
		var compact bytes.Buffer
		if err := json.Compact(&compact, kv.Value); err != nil || compact.Len() == 0 || compact.String() == "null" {
			return fmt.Errorf("%s: key %s has no value", where, kv.Key)
		}
		v, err := model.Decode(k, compact.Bytes(), 0)
		if err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		if b, ok := v.(*model.AllocationBlock); ok && b.CIDR.Prefix != k.(model.BlockKey).CIDR {
			return fmt.Errorf("%s: key %s holds the block of CIDR %s", where, kv.Key, b.CIDR.Prefix)
		}
		out = append(out, Entry{Key: k, Value: compact.Bytes()})
		return nil
	}
	sections := []struct {
		name, what string
		kvs        []KV
		want       func(model.Key) bool
	}{
		{"block_affinities", "block affinity", in.BlockAffinities, func(k model.Key) bool { _, ok := k.(model.BlockAffinityKey); return ok }},
		{"blocks", "block", in.Blocks, func(k model.Key) bool { _, ok := k.(model.BlockKey); return ok }},
		{"handles", "handle", in.Handles, func(k model.Key) bool { _, ok := k.(model.HandleKey); return ok }},
	}
	for _, s := range sections {
		for i, kv := range s.kvs {
			if err := add(s.name, s.what, i, kv, s.want); err != nil {
				return nil, err
			}
		}
	}
	if in.Config != nil {
		if err := add("config", "configuration", 0, *in.Config, func(k model.Key) bool { _, ok := k.(model.IPAMConfigKey); return ok }); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// protectedTiers exist in a datastore before anything is imported: the
// default tier, and the tiers Calico creates for Kubernetes' admin
// policies.
var protectedTiers = map[string]bool{"default": true, "kube-admin": true, "kube-baseline": true}

// CheckEmpty fails unless the datastore holds no resources beyond its
// ClusterInformation and built-in tiers, and no IPAM keys.
func CheckEmpty(ctx context.Context, be backend.Client) error {
	res, ipam, _, err := listBoth(ctx, be)
	if err != nil {
		return err
	}
	for _, kv := range res {
		k, ok := kv.Key.(model.ResourceKey)
		if !ok || k.Kind == v3.KindClusterInformation || (k.Kind == v3.KindTier && protectedTiers[k.Name]) {
			continue
		}
		return fmt.Errorf("found existing Calico %s resource", k.Kind)
	}
	if len(ipam) > 0 {
		return errors.New("found existing IPAM resources")
	}
	return nil
}

// WriteIPAM creates every entry, in order, in transactions of at most
// backend.MaxTxnOps keys, each key only if it is absent. It returns how
// many were written before any error.
func WriteIPAM(ctx context.Context, be backend.Client, entries []Entry) (int, error) {
	tx, ok := be.(backend.Transactor)
	if !ok {
		return 0, errors.New("the datastore cannot write several keys in one transaction")
	}
	done := 0
	for done < len(entries) {
		batch := entries[done:min(done+backend.MaxTxnOps, len(entries))]
		ops := make([]backend.TxnOp, len(batch))
		for i, e := range batch {
			ops[i] = backend.TxnOp{Action: backend.TxnPut, Key: e.Key, Value: e.Value}
		}
		if _, err := tx.Txn(ctx, ops); err != nil {
			return done, err
		}
		done += len(batch)
	}
	return done, nil
}
