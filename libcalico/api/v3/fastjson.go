package v3

import (
	"encoding/json"
	"sync/atomic"
)

// storedDecoder decodes values read back from the datastore: encoding/json
// unless a program registers a drop-in (package fastdecode does, with
// json-iterator). The choice is the program's: json-iterator decodes a
// long List about twice as fast, but its first decode of each type and
// its size cost a short-lived process like a CNI plugin more than that.
var storedDecoder atomic.Pointer[func([]byte, any) error]

// SetStoredDecoder makes DecodeLenient use f, which must behave as
// encoding/json.Unmarshal does (custom unmarshalers, tags).
func SetStoredDecoder(f func([]byte, any) error) { storedDecoder.Store(&f) }

func unmarshalStored(data []byte, v any) error {
	if f := storedDecoder.Load(); f != nil {
		return (*f)(data, v)
	}
	return json.Unmarshal(data, v)
}
