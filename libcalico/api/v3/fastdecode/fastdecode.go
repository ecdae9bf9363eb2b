// Package fastdecode, imported for its side effect, makes the v3 API
// decode stored values with json-iterator: about twice as fast as
// encoding/json on long Lists, for programs that live long or list much
// (Felix, confd, bgpd, calicoctl).
package fastdecode

import (
	jsoniter "github.com/json-iterator/go"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
)

func init() { v3.SetStoredDecoder(jsoniter.ConfigCompatibleWithStandardLibrary.Unmarshal) }
