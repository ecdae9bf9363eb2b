package v3

import (
	"encoding/json"
	"sync/atomic"

	jsoniter "github.com/json-iterator/go"
)

// storedJSON decodes values read back from the datastore. It behaves like
// encoding/json (custom unmarshalers, tags) at about twice the speed, which
// matters when a List decodes thousands of resources.
var storedJSON = jsoniter.ConfigCompatibleWithStandardLibrary

var fastStart atomic.Bool

// PreferFastStart makes stored values decode with encoding/json instead:
// its first decode of each type costs about a quarter of json-iterator's
// (0.2 vs 0.8 ms for four kinds), which is what counts in a process that
// decodes a few values and exits, like the CNI plugins.
func PreferFastStart() { fastStart.Store(true) }

func unmarshalStored(data []byte, v any) error {
	if fastStart.Load() {
		return json.Unmarshal(data, v)
	}
	return storedJSON.Unmarshal(data, v)
}
