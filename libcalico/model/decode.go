package model

import (
	"encoding/json"
	"fmt"
	"strconv"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/cerrors"
)

// Unmarshal decodes JSON as encoding/json's Unmarshal does. A program
// that decodes many values (felix, confd, calicoctl) may pass a faster one
// that behaves the same, goccy/go-json's Unmarshal (client's
// TestFixtureDecodesAlikeWithGoccy and FuzzDecodeAlikeWithGoccy hold it to
// that); nil is encoding/json's.
type Unmarshal func(data []byte, v any) error

// Decode turns a stored value into its Go type: a v3 resource (leniently,
// so fields written by newer Calico versions do not break readers) with
// resourceVersion set to rev, an IPAM struct, or json.RawMessage for
// felix status reports. A value that does not decode gives a
// *cerrors.Corrupt naming the etcd key.
func Decode(k Key, data []byte, rev int64) (any, error) { return DecodeWith(nil, k, data, rev) }

// DecodeWith is Decode with unmarshal (nil: encoding/json's).
func DecodeWith(unmarshal Unmarshal, k Key, data []byte, rev int64) (any, error) {
	if unmarshal == nil {
		unmarshal = json.Unmarshal
	}
	var out any
	switch k := k.(type) {
	case ResourceKey:
		r, err := v3.DecodeLenientWith(unmarshal, k.Kind, data)
		if err != nil {
			return nil, Corrupt(k, err)
		}
		m := r.GetObjectMeta()
		if rev != 0 {
			m.ResourceVersion = strconv.FormatInt(rev, 10)
		}
		if m.Name == "" {
			m.Name = k.Name
		}
		if m.Namespace == "" {
			m.Namespace = k.Namespace
		}
		return r, nil
	case BlockKey:
		out = &AllocationBlock{}
	case BlockAffinityKey:
		out = &BlockAffinity{}
	case HandleKey:
		out = &IPAMHandle{}
	case IPAMConfigKey:
		out = &IPAMConfig{}
	case FelixStatusKey, WorkloadEndpointStatusKey:
		return json.RawMessage(append([]byte(nil), data...)), nil
	default:
		return nil, fmt.Errorf("no value type for key %v", k)
	}
	if err := unmarshal(data, out); err != nil {
		return nil, Corrupt(k, err)
	}
	return out, nil
}

// Corrupt reports that the value stored at k does not decode.
func Corrupt(k Key, err error) *cerrors.Corrupt {
	path, perr := k.Path()
	if perr != nil {
		path = k.String()
	}
	return &cerrors.Corrupt{Key: path, Err: err}
}
