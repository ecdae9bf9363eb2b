package cli

import (
	"strings"
	"testing"

	"github.com/calico-etcd/calico/deploy/lab/internal/lab"
)

func TestCheckUpRefusesBadFlags(t *testing.T) {
	for _, ok := range []lab.Options{{Subnets: 1, EtcdMembers: 1}, {Subnets: 3, EtcdMembers: 3, VXLAN: "crossSubnet"}} {
		if err := checkUp(3, ok); err != nil {
			t.Fatalf("%+v refused: %v", ok, err)
		}
	}
	for _, c := range []struct {
		hosts int
		o     lab.Options
		want  string
	}{
		{3, lab.Options{Subnets: 0, EtcdMembers: 1}, "--subnets must be between 1 and --hosts (3), not 0"},
		{3, lab.Options{Subnets: 4, EtcdMembers: 1}, "--subnets must be between 1 and --hosts (3), not 4"},
		{3, lab.Options{Subnets: 1, EtcdMembers: 0}, "--etcd-members must be between 1 and 9, not 0"},
		{3, lab.Options{Subnets: 1, EtcdMembers: 10}, "--etcd-members must be between 1 and 9, not 10"},
		{3, lab.Options{Subnets: 1, EtcdMembers: 1, VXLAN: "sometimes"}, `--vxlan: "sometimes" is not Never, Always or CrossSubnet`},
	} {
		err := checkUp(c.hosts, c.o)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: err = %v, want %q", c.o, err, c.want)
		}
	}
}
