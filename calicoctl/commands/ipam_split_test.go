package commands

import (
	"maps"
	"net/netip"
	"strings"
	"testing"
)

// TestIPAMSplit splits a pool with allocated addresses into four: the
// addresses stay allocated, now in the new pools, and ipam check is
// clean.
func TestIPAMSplit(t *testing.T) {
	e := newIPAMEnv(t)
	e.healthy()
	e.mustRun("label", "ippool", "pool1", "env=prod")
	s := &session{c: e.cli}
	s.run("ipam", "split", "4", "--name", "pool1")
	s.run("datastore", "migrate", "lock")
	s.run("ipam", "split", "4", "--name", "pool1")
	s.run("get", "ippools", "-o", "wide")
	s.run("get", "ippool", "split-pool1-2", "-o", "yaml")
	s.run("ipam", "split", "2", "--cidr", "10.0.1.0/24")
	s.run("ipam", "show")
	s.run("datastore", "migrate", "unlock")
	golden(t, "ipam-split", normalize(s.b.String()))
	if r := e.mustRun("ipam", "check"); !strings.Contains(r.stdout, "Check complete; found 0 problems.") {
		t.Fatal(r)
	}
	if r := e.mustRun("ipam", "show", "--ip=10.0.0.70"); !strings.Contains(r.stdout, "IP 10.0.0.70 is in use") {
		t.Fatal(r)
	}
}

// TestIPAMSplitErrors refuses bad input before writing anything.
func TestIPAMSplitErrors(t *testing.T) {
	e := newIPAMEnv(t)
	e.healthy()
	e.mustRun("datastore", "migrate", "lock")
	before := dump(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"x", "--name", "pool1"}, "error reading number to split IP pools into. x is not a valid number"},
		{[]string{"3", "--name", "pool1"}, "number to split CIDR into is not a valid power of 2: 3"},
		{[]string{"1", "--name", "pool1"}, "number to split CIDR into is not a valid power of 2: 1"},
		{[]string{"128", "--name", "pool1"}, "number to split CIDR into is larger than 64: 128"},
		{[]string{"8", "--name", "pool1"}, "error with field IPPool.Spec.CIDR = '10.0.0.0/27' (IP pool size is too small for use with Calico IPAM"},
		{[]string{"2", "--name", "nope"}, "unable to find IP pool with name nope: resource does not exist: IPPool(nope)"},
		{[]string{"2", "--cidr", "10.9.0.0/16"}, "unable to find IP pool covering the specified CIDR 10.9.0.0/16"},
		{[]string{"2", "--cidr", "10.9.0.0/33"}, "error with field --cidr = '10.9.0.0/33'"},
		{[]string{"2", "--name", "pool2", "--cidr", "10.0.0.0/24"}, "IP pool pool2 has CIDR 10.0.1.0/24, not 10.0.0.0/24"},
		{[]string{"2"}, "no name or CIDR provided"},
	} {
		r := e.run(append([]string{"ipam", "split"}, tc.args...)...)
		if r.code != 1 || !strings.Contains(r.stderr, tc.want) || r.stdout != "" {
			t.Errorf("%v: want %q:\n%s", tc.args, tc.want, r)
		}
	}
	if !maps.Equal(before, dump(t)) {
		t.Fatal("a refused split changed the datastore")
	}
}

func TestSplitCIDR(t *testing.T) {
	for _, tc := range []struct {
		cidr  string
		parts int
		want  string
	}{
		{"10.0.0.0/24", 4, "10.0.0.0/26 10.0.0.64/26 10.0.0.128/26 10.0.0.192/26"},
		{"10.0.0.5/24", 2, "10.0.0.0/25 10.0.0.128/25"},
		{"fd00::/64", 2, "fd00::/65 fd00::8000:0:0:0/65"},
		{"255.255.255.252/30", 4, "255.255.255.252/32 255.255.255.253/32 255.255.255.254/32 255.255.255.255/32"},
	} {
		got, err := splitCIDR(tc.cidr, tc.parts)
		if err != nil {
			t.Fatal(err)
		}
		var s []string
		for _, p := range got {
			s = append(s, p.String())
			if netip.MustParsePrefix(p.String()) != p {
				t.Errorf("%v is not canonical", p)
			}
		}
		if strings.Join(s, " ") != tc.want {
			t.Errorf("%s/%d: %s", tc.cidr, tc.parts, s)
		}
	}
	if _, err := splitCIDR("10.0.0.0/31", 4); err == nil || !strings.Contains(err.Error(), "not large enough to be split into 4 parts") {
		t.Fatal(err)
	}
	if n := len(splitName(strings.Repeat("a", 250), 3)); n > 253 {
		t.Fatalf("split name of %d characters", n)
	}
}
