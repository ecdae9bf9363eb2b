package ipsets

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/calico-etcd/calico/felix/dpapi"
)

type fakeRunner struct {
	save     string
	mu       sync.Mutex
	restores []string
	fail     func(stdin string) error
}

func (f *fakeRunner) Run(_ context.Context, stdin []byte, _ string, args ...string) ([]byte, error) {
	if args[0] == "save" {
		return []byte(f.save), nil
	}
	if f.fail != nil {
		if err := f.fail(string(stdin)); err != nil {
			return nil, err
		}
	}
	f.mu.Lock()
	f.restores = append(f.restores, string(stdin))
	f.mu.Unlock()
	return nil, nil
}

func set(name, typ string, members ...string) *Set {
	s := &Set{Name: name, Type: typ, Family: "inet", Members: map[string]struct{}{}}
	for _, m := range members {
		s.Members[m] = struct{}{}
	}
	return s
}

func lines(s string) []string {
	out := strings.Split(strings.TrimSpace(s), "\n")
	sort.Strings(out)
	return out
}

func TestApplyUpdatesWritesDeltas(t *testing.T) {
	r := &fakeRunner{save: `create cali40s:a hash:net family inet hashsize 1024 maxelem 1048576 bucketsize 12 initval 0x1
add cali40s:a 10.0.0.1
add cali40s:a 10.0.0.2
create cali40s:wrongtype hash:ip family inet hashsize 1024 maxelem 1048576
add cali40s:wrongtype 10.0.0.9
create cali40s:stale hash:net family inet hashsize 1024 maxelem 1048576
create docker-set hash:net family inet hashsize 1024 maxelem 65536
`}
	m := New(Config{Runner: r})
	desired := map[string]*Set{
		"cali40s:a":         set("cali40s:a", TypeNet, "10.0.0.2", "10.0.0.3"),
		"cali40s:new":       set("cali40s:new", TypeIPPort, "10.0.0.1,tcp:80"),
		"cali40s:wrongtype": set("cali40s:wrongtype", TypeNet, "10.0.0.9"),
	}
	if err := m.ApplyUpdates(context.Background(), desired); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"add cali40s:a 10.0.0.3",
		"add cali40s:new 10.0.0.1,tcp:80",
		"add cali4t1 10.0.0.9",
		"create cali40s:new hash:ip,port family inet maxelem 1048576",
		"create cali4t1 hash:net family inet maxelem 1048576",
		"del cali40s:a 10.0.0.1",
		"destroy cali4t1",
		"swap cali4t1 cali40s:wrongtype",
	}
	if len(r.restores) != 1 || strings.Join(lines(r.restores[0]), "\n") != strings.Join(want, "\n") {
		t.Fatalf("restore input:\n%s", strings.Join(r.restores, "\n---\n"))
	}
	if !strings.Contains(r.restores[0], "swap cali4t1 cali40s:wrongtype\ndestroy cali4t1\n") {
		t.Fatalf("temporary set destroyed before the swap:\n%s", r.restores[0])
	}

	// Nothing changed: nothing written.
	if err := m.ApplyUpdates(context.Background(), desired); err != nil || len(r.restores) != 1 {
		t.Fatalf("no-op apply: %v, %d writes", err, len(r.restores))
	}
	// Deletions remove only our unwanted sets.
	if err := m.ApplyDeletions(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := r.restores[1]; got != "destroy cali40s:stale\n" {
		t.Fatalf("deletions: %q", got)
	}
}

func TestApplyDeletionsSurvivesBusySet(t *testing.T) {
	r := &fakeRunner{save: "create cali40s:busy hash:net family inet maxelem 1048576\ncreate cali40s:free hash:net family inet maxelem 1048576\n"}
	r.fail = func(in string) error {
		if strings.Contains(in, "busy") {
			return errors.New("Set cannot be destroyed: it is in use by a kernel component")
		}
		return nil
	}
	m := New(Config{Runner: r})
	if err := m.ApplyUpdates(context.Background(), map[string]*Set{}); err != nil {
		t.Fatal(err)
	}
	err := m.ApplyDeletions(context.Background())
	if err == nil || !strings.Contains(err.Error(), "cali40s:busy") {
		t.Fatalf("err = %v", err)
	}
	if len(r.restores) != 1 || r.restores[0] != "destroy cali40s:free\n" {
		t.Fatalf("restores %q", r.restores)
	}
}

func TestFailedRestoreForcesResync(t *testing.T) {
	r := &fakeRunner{fail: func(string) error { return errors.New("boom") }}
	m := New(Config{Runner: r})
	if err := m.ApplyUpdates(context.Background(), map[string]*Set{"cali40s:x": set("cali40s:x", TypeNet)}); err == nil {
		t.Fatal("no error")
	}
	if m.kernel != nil {
		t.Fatal("kernel view kept after a failed write")
	}
}

// numbered returns a set of n members.
func numbered(name string, n int) *Set {
	s := set(name, TypeNet)
	for i := range n {
		s.Members[netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}).String()] = struct{}{}
	}
	return s
}

func TestLargeUpdateBiggestSetsFirstOverRestores(t *testing.T) {
	desired := map[string]*Set{
		"cali40s:a":   numbered("cali40s:a", 10),
		"cali40s:big": numbered("cali40s:big", 9000),
		"cali40s:mid": numbered("cali40s:mid", 5000),
		"cali40s:z":   numbered("cali40s:z", 4000),
	}
	creates := func(in string) (names []string) {
		for _, l := range strings.Split(in, "\n") {
			if f := strings.Fields(l); len(f) > 1 && f[0] == "create" {
				names = append(names, f[1])
			}
		}
		return names
	}

	// One process: the sets by size, biggest first.
	one := &fakeRunner{}
	if err := New(Config{Runner: one}).ApplyUpdates(context.Background(), desired); err != nil {
		t.Fatal(err)
	}
	if len(one.restores) != 1 || !slices.Equal(creates(one.restores[0]), []string{"cali40s:big", "cali40s:mid", "cali40s:z", "cali40s:a"}) {
		t.Fatalf("one restore: %d inputs, sets %v", len(one.restores), creates(strings.Join(one.restores, "")))
	}

	// Two: the same input cut between two sets, about half each.
	two := &fakeRunner{}
	m := New(Config{Runner: two, Restores: 2})
	if err := m.ApplyUpdates(context.Background(), desired); err != nil {
		t.Fatal(err)
	}
	sort.Slice(two.restores, func(i, j int) bool { return strings.Contains(two.restores[i], "create cali40s:big ") })
	if len(two.restores) != 2 || !slices.Equal(creates(two.restores[0]), []string{"cali40s:big"}) ||
		!slices.Equal(creates(two.restores[1]), []string{"cali40s:mid", "cali40s:z", "cali40s:a"}) {
		t.Fatalf("two restores: %d inputs, sets %v then %v", len(two.restores), creates(two.restores[0]), creates(two.restores[len(two.restores)-1]))
	}
	if got := strings.Join(two.restores, ""); len(got) != len(one.restores[0]) || !slices.Equal(lines(got), lines(one.restores[0])) {
		t.Fatal("two restores wrote other lines than one")
	}
	// Nothing left to do afterwards, and a small change is one process.
	two.restores = nil
	desired["cali40s:a"] = numbered("cali40s:a", 11)
	if err := m.ApplyUpdates(context.Background(), desired); err != nil {
		t.Fatal(err)
	}
	if len(two.restores) != 1 || two.restores[0] != "add cali40s:a 10.0.0.10\n" {
		t.Fatalf("restores %q", two.restores)
	}
}

func TestFailedShareOfRestoresForcesResync(t *testing.T) {
	r := &fakeRunner{fail: func(in string) error {
		if strings.Contains(in, "cali40s:mid") {
			return errors.New("boom")
		}
		return nil
	}}
	m := New(Config{Runner: r, Restores: 2})
	err := m.ApplyUpdates(context.Background(), map[string]*Set{
		"cali40s:big": numbered("cali40s:big", 9000), "cali40s:mid": numbered("cali40s:mid", 8000)})
	if err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("err = %v", err)
	}
	if m.kernel != nil {
		t.Fatal("kernel view kept after a failed write")
	}
}

func TestCanonicalMembers(t *testing.T) {
	for _, tc := range []struct {
		typ  string
		ipv  int
		in   string
		want []string
	}{
		{TypeNet, 4, "10.0.0.1", []string{"10.0.0.1"}},
		{TypeNet, 4, "10.0.0.1/32", []string{"10.0.0.1"}},
		{TypeNet, 4, "10.0.0.7/24", []string{"10.0.0.0/24"}},
		{TypeNet, 4, "0.0.0.0/0", []string{"0.0.0.0/1", "128.0.0.0/1"}},
		{TypeNet, 6, "::/0", []string{"::/1", "8000::/1"}},
		{TypeNet, 6, "fd00:0:0::1/128", []string{"fd00::1"}},
		{TypeNet, 4, "fd00::1", nil},
		{TypeNet, 6, "10.0.0.1", nil},
		{TypeNet, 4, "::ffff:10.0.0.1", []string{"10.0.0.1"}},
		{TypeNet, 4, "junk", nil},
		{TypeIPPort, 4, "10.0.0.1,TCP:80", []string{"10.0.0.1,tcp:80"}},
		{TypeIPPort, 6, "fd00:0::1,udp:53", []string{"fd00::1,udp:53"}},
		{TypeIPPort, 4, "fd00::1,udp:53", nil},
		{TypeIPPort, 4, "10.0.0.1", nil},
		// Members already in kernel form come back as they are.
		{TypeNet, 4, "10.0.0.0/24", []string{"10.0.0.0/24"}},
		{TypeNet, 6, "fd00::/64", []string{"fd00::/64"}},
		{TypeNet, 6, "fd00::1/128", []string{"fd00::1"}},
		{TypeIPPort, 4, "10.0.0.1,tcp:80", []string{"10.0.0.1,tcp:80"}},
		{TypeIPPort, 4, "::ffff:10.0.0.1,tcp:80", []string{"10.0.0.1,tcp:80"}},
		{TypeIPPort, 6, "FD00::1,udp:53", []string{"fd00::1,udp:53"}},
	} {
		got := CanonicalMembers(tc.typ, tc.ipv, tc.in)
		if strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("CanonicalMembers(%s, %d, %q) = %v, want %v", tc.typ, tc.ipv, tc.in, got, tc.want)
		}
	}
}

func TestFromState(t *testing.T) {
	s := &dpapi.State{
		IPSets: map[string]*dpapi.IPSet{
			"s:abcdefghijklmnopqrstuvw": {ID: "s:abcdefghijklmnopqrstuvw", Type: dpapi.IPSetNet, Members: []string{"10.0.0.1", "fd00::1", "10.1.0.0/16"}},
			"n:http":                    {ID: "n:http", Type: dpapi.IPSetIPPort, Members: []string{"10.0.0.1,tcp:80"}},
			"s:a-selector-id-much-longer-than-ipset-allows": {Type: dpapi.IPSetNet},
		},
		Pools: map[string]*dpapi.Pool{
			"a": {CIDR: netip.MustParsePrefix("10.65.0.0/16"), NATOutgoing: true},
			"b": {CIDR: netip.MustParsePrefix("10.66.0.0/16"), Disabled: true},
			"c": {CIDR: netip.MustParsePrefix("fd00::/64"), NATOutgoing: true},
		},
		Hosts: map[string]*dpapi.Host{
			"h1": {IPv4: netip.MustParsePrefix("192.168.1.1/24"), IPv6: netip.MustParsePrefix("fd01::1/64")},
			"h2": {IPv4: netip.MustParsePrefix("192.168.1.2/24")},
		},
	}
	v4, v6 := FromState(s, 4), FromState(s, 6)
	check := func(sets map[string]*Set, name, typ, fam string, members ...string) {
		t.Helper()
		got := sets[name]
		if got == nil {
			t.Fatalf("no set %s in %v", name, keys(sets))
		}
		if got.Type != typ || got.Family != fam || strings.Join(got.SortedMembers(), ",") != strings.Join(members, ",") {
			t.Errorf("%s = %s %s %v", name, got.Type, got.Family, got.SortedMembers())
		}
	}
	check(v4, "cali40s:abcdefghijklmnopqrstuvw", TypeNet, "inet", "10.0.0.1", "10.1.0.0/16")
	check(v6, "cali60s:abcdefghijklmnopqrstuvw", TypeNet, "inet6", "fd00::1")
	check(v4, "cali40n:http", TypeIPPort, "inet", "10.0.0.1,tcp:80")
	check(v6, "cali60n:http", TypeIPPort, "inet6")
	check(v4, "cali40all-ipam-pools", TypeNet, "inet", "10.65.0.0/16", "10.66.0.0/16")
	check(v4, "cali40masq-ipam-pools", TypeNet, "inet", "10.65.0.0/16")
	check(v6, "cali60masq-ipam-pools", TypeNet, "inet6", "fd00::/64")
	check(v4, "cali40all-hosts-net", TypeNet, "inet", "192.168.1.1", "192.168.1.2")
	check(v6, "cali60all-hosts-net", TypeNet, "inet6", "fd01::1")
	for name := range v4 {
		if len(name) > MaxNameLength {
			t.Errorf("set name %q too long", name)
		}
	}
	if n := Name(4, "s:a-selector-id-much-longer-than-ipset-allows"); len(n) != MaxNameLength || !strings.HasPrefix(n, "cali40_") {
		t.Errorf("long ID gave %q", n)
	}
}

func keys(m map[string]*Set) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestConverterReusesUnchangedSets(t *testing.T) {
	a := &dpapi.IPSet{ID: "s:a", Type: dpapi.IPSetNet, Members: []string{"10.0.0.1"}}
	b := &dpapi.IPSet{ID: "s:b", Type: dpapi.IPSetNet, Members: []string{"10.0.0.2"}}
	var c Converter
	first := c.FromState(&dpapi.State{IPSets: map[string]*dpapi.IPSet{"s:a": a, "s:b": b}}, 4)
	b2 := &dpapi.IPSet{ID: "s:b", Type: dpapi.IPSetNet, Members: []string{"10.0.0.3"}}
	firstNames := keys(first)
	cs := &dpapi.IPSet{ID: "s:c", Type: dpapi.IPSetNet, Members: []string{"10.0.0.4"}}
	second := c.FromState(&dpapi.State{IPSets: map[string]*dpapi.IPSet{"s:a": a, "s:b": b2, "s:c": cs}}, 4)
	if got := keys(first); !slices.Equal(got, firstNames) {
		t.Errorf("the next call changed the map the first returned: %v, was %v", got, firstNames)
	}
	if first["cali40s:a"] != second["cali40s:a"] {
		t.Error("an unchanged calc set was converted again")
	}
	if got := strings.Join(second["cali40s:b"].SortedMembers(), ","); got != "10.0.0.3" {
		t.Errorf("changed set has members %s, want 10.0.0.3", got)
	}
	if v6 := c.FromState(&dpapi.State{IPSets: map[string]*dpapi.IPSet{"s:a": a}}, 6); len(v6["cali60s:a"].Members) != 0 {
		t.Errorf("IPv6 conversion reused the IPv4 set: %v", v6["cali60s:a"].SortedMembers())
	}

	// The Manager skips a set it wrote from the same *Set, until a
	// refresh makes it compare with the kernel again.
	r := &fakeRunner{}
	m := New(Config{Runner: r})
	ctx := context.Background()
	if err := m.ApplyUpdates(ctx, second); err != nil || len(r.restores) != 1 {
		t.Fatalf("first apply: %v, %d writes", err, len(r.restores))
	}
	if err := m.ApplyUpdates(ctx, second); err != nil || len(r.restores) != 1 {
		t.Fatalf("same sets again: %v, %d writes", err, len(r.restores))
	}
	r.save = "create cali40s:a hash:net family inet hashsize 1024 maxelem 1048576\n"
	m.Invalidate()
	if err := m.ApplyUpdates(ctx, second); err != nil || len(r.restores) != 2 {
		t.Fatalf("after refresh: %v, %d writes", err, len(r.restores))
	}
	if !strings.Contains(r.restores[1], "add cali40s:a 10.0.0.1\n") {
		t.Errorf("refresh did not repair the emptied set:\n%s", r.restores[1])
	}
}

// oneSet is a State holding set s:a with members.
func oneSet(members ...string) *dpapi.State {
	return &dpapi.State{IPSets: map[string]*dpapi.IPSet{"s:a": {ID: "s:a", Type: dpapi.IPSetNet, Members: members}}}
}

func TestConverterPatchesChangedSets(t *testing.T) {
	var c Converter
	r := &fakeRunner{}
	m := New(Config{Runner: r})
	ctx := context.Background()
	apply := func(s *dpapi.State) *Set {
		t.Helper()
		sets := c.FromState(s, 4)
		if err := m.ApplyUpdates(ctx, sets); err != nil {
			t.Fatal(err)
		}
		want := FromState(s, 4)["cali40s:a"]
		if got := sets["cali40s:a"]; strings.Join(got.SortedMembers(), ",") != strings.Join(want.SortedMembers(), ",") {
			t.Fatalf("patched members %v, converted afresh %v", got.SortedMembers(), want.SortedMembers())
		}
		return sets["cali40s:a"]
	}
	first := apply(oneSet("10.0.0.1/32", "10.0.0.2/32", "10.0.1.0/24", "fd00::1/128"))
	// One member replaced, one prefix added: only they are written.
	second := apply(oneSet("10.0.0.1/32", "10.0.0.3/32", "10.0.1.0/24", "10.0.2.0/24", "fd00::1/128"))
	if second.delta == nil || second.delta.from != first {
		t.Fatal("a changed set was not patched from its last version")
	}
	if first.delta != nil {
		t.Error("the earlier set still refers back")
	}
	if got := r.restores[len(r.restores)-1]; got != "del cali40s:a 10.0.0.2\nadd cali40s:a 10.0.0.3\nadd cali40s:a 10.0.2.0/24\n" {
		t.Fatalf("restore input for the patch:\n%s", got)
	}
	// Two members with one kernel form: converted afresh, and removing
	// one of them keeps the address.
	apply(oneSet("10.0.0.1", "10.0.0.1/32", "10.0.0.3/32"))
	if second.delta != nil {
		t.Error("a set keeps its delta (and so the set before it) past the next conversion")
	}
	third := apply(oneSet("10.0.0.1/32", "10.0.0.3/32"))
	if third.delta != nil {
		t.Error("a set whose members share a kernel form was patched")
	}
	if _, ok := third.Members["10.0.0.1"]; !ok {
		t.Error("10.0.0.1 lost with one of its two spellings")
	}
	// Unsorted members (not calc's): converted afresh.
	if apply(oneSet("10.0.0.9/32", "10.0.0.3/32")).delta != nil {
		t.Error("unsorted members were patched")
	}
}

func TestConverterNameOf(t *testing.T) {
	var c Converter
	long := "s:" + strings.Repeat("x", 40)
	c.FromState(&dpapi.State{IPSets: map[string]*dpapi.IPSet{long: {ID: long, Type: dpapi.IPSetNet}}}, 4)
	for _, id := range []string{long, "s:short", "s:" + strings.Repeat("y", 40)} {
		for _, v := range []int{4, 6} {
			if got, want := c.NameOf(v, id), Name(v, id); got != want {
				t.Errorf("NameOf(%d, %s) = %s, want %s", v, id, got, want)
			}
		}
	}
}

// A set patched for an Apply that never ran (abandoned, or failed before
// the IP sets) is still written in full by the next one.
func TestConverterPatchOfAnAbandonedApplyIsWrittenLater(t *testing.T) {
	var c Converter
	r := &fakeRunner{}
	m := New(Config{Runner: r})
	ctx := context.Background()
	if err := m.ApplyUpdates(ctx, c.FromState(oneSet("10.0.0.1/32", "10.0.0.2/32"), 4)); err != nil {
		t.Fatal(err)
	}
	c.FromState(oneSet("10.0.0.1/32", "10.0.0.3/32"), 4) // not applied
	sets := c.FromState(oneSet("10.0.0.1/32", "10.0.0.3/32", "10.0.0.4/32"), 4)
	if err := m.ApplyUpdates(ctx, sets); err != nil {
		t.Fatal(err)
	}
	got := r.restores[len(r.restores)-1]
	if got != "del cali40s:a 10.0.0.2\nadd cali40s:a 10.0.0.3\nadd cali40s:a 10.0.0.4\n" {
		t.Fatalf("restore input after the skipped patch:\n%s", got)
	}
	// The Manager's view is its own: later patches do not change it.
	c.FromState(oneSet("10.0.0.9/32"), 4)
	if have := m.kernel["cali40s:a"].members; len(have) != 3 {
		t.Fatalf("the Manager's view of the kernel changed with the desired set: %v", have)
	}
}

func TestSplitRuns(t *testing.T) {
	ups := func(lines ...int) []update {
		var out []update
		for i, n := range lines {
			out = append(out, update{name: fmt.Sprint(i), adds: make([]string, n)})
		}
		return out
	}
	sizes := func(parts [][]update) (out [][]int) {
		for _, p := range parts {
			var s []int
			for _, u := range p {
				s = append(s, u.lines())
			}
			out = append(out, s)
		}
		return out
	}
	for _, tc := range []struct {
		lines []int
		n     int
		want  string
	}{
		{[]int{9000, 5000, 4000, 10}, 0, "[[9000 5000 4000 10]]"},
		{[]int{9000, 5000, 4000, 10}, 1, "[[9000 5000 4000 10]]"},
		{[]int{9000, 5000, 4000, 10}, 2, "[[9000] [5000 4000 10]]"},
		{[]int{9000, 5000, 4000, 10}, 3, "[[9000] [5000 4000 10]]"},  // a third run would be 4,010 lines
		{[]int{9000, 5000, 4000, 10}, 16, "[[9000] [5000 4000 10]]"}, // four runs' worth of lines, but not in these sets
		{[]int{9000, 5000, 5000, 10}, 3, "[[9000] [5000] [5000 10]]"},
		{[]int{3000, 1000}, 2, "[[3000 1000]]"}, // under two runs' worth
		{[]int{20000}, 4, "[[20000]]"},          // one set is not cut
		{[]int{4096, 4096, 4096, 4096}, 2, "[[4096 4096] [4096 4096]]"},
	} {
		if got := fmt.Sprint(sizes(split(ups(tc.lines...), tc.n))); got != tc.want {
			t.Errorf("split(%v, %d) = %s, want %s", tc.lines, tc.n, got, tc.want)
		}
	}
}
