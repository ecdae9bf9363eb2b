package commands

import (
	"fmt"
	"strings"

	"github.com/calico-etcd/calico/calicoctl/internal/kinds"
	"github.com/calico-etcd/calico/libcalico/cerrors"
	"github.com/calico-etcd/calico/libcalico/model"
)

// Stored values that do not decode.
//
// A read of many values (get KIND, ipam show, ipam check, the checks
// before create/apply/replace) skips a value that does not decode, as
// Calico's calicoctl does, and goes on with the others; unlike Calico,
// which skips in silence, it prints a warning per value on stderr naming
// the etcd key and the decode error. The exit status is that of the
// command without the value: 0 for get and ipam show, which print what
// they could read (as Calico's do); ipam check counts each such value as
// a problem (its exit status stays 0, as for every problem it finds) and
// --release-leaks then repairs nothing and exits 1. Reading one value by
// name (get KIND NAME) fails with the decode error, exit 1. Deleting a
// resource by name needs no decoding and removes the value.

// skipCorrupt warns about each value a partial read skipped and returns
// the rest of err (nil when err was only a *cerrors.Partial).
func (env *Env) skipCorrupt(err error) error {
	skipped, err := cerrors.Skipped(err)
	env.warnCorrupt(skipped...)
	return err
}

// warnCorrupt prints one warning per value, once per run.
func (env *Env) warnCorrupt(cs ...*cerrors.Corrupt) {
	for _, c := range cs {
		if env.warned[c.Key] {
			continue
		}
		if env.warned == nil {
			env.warned = map[string]bool{}
		}
		env.warned[c.Key] = true
		fmt.Fprintf(env.Stderr, "Warning: skipping a stored value that does not decode: %v%s\n", c, repairHint(c.Key))
	}
}

// repairHint says how to remove a resource whose value does not decode.
func repairHint(key string) string {
	k, ok := model.ParseKey(key).(model.ResourceKey)
	if !ok {
		return ""
	}
	info, ok := kinds.ByKind(k.Kind)
	if !ok || info.ReadOnly {
		return ""
	}
	kind := strings.ToLower(k.Kind)
	if k.Namespace != "" {
		return fmt.Sprintf(" ('calicoctl delete %s %s -n %s' removes it)", kind, k.Name, k.Namespace)
	}
	return fmt.Sprintf(" ('calicoctl delete %s %s' removes it)", kind, k.Name)
}
