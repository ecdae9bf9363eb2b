package iptables

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/calico-etcd/calico/felix/dataplane/runner"
)

// TableNames are the tables Tables manages, in the order they are written.
var TableNames = []string{"raw", "mangle", "nat", "filter"}

// Desired is what one table should hold.
type Desired struct {
	// Chains are owned chains, rewritten whole when they differ.
	Chains []*Chain
	// Inserts are rules kept, in order, at the top of chains we do not own
	// (the kernel's INPUT, FORWARD, ...).
	Inserts map[string][]Rule
	// Appends are rules kept, in order, at the bottom of such chains.
	Appends map[string][]Rule
}

// Config configures Tables for one IP version.
type Config struct {
	IPVersion int    // 4 or 6
	Backend   string // "nft" or "legacy"
	Runner    runner.Runner
	Log       *logrus.Entry
	Metrics   *Metrics // optional
	// OwnedPrefixes: chains with these prefixes are ours; default "cali-".
	OwnedPrefixes []string
	// LookPath finds binaries; default exec.LookPath.
	LookPath func(string) (string, error)
}

// Tables converges the raw, mangle, nat and filter tables of one IP version
// with iptables-restore --noflush, writing only chains that differ from
// what it last wrote or read.
type Tables struct {
	cfg        Config
	log        *logrus.Entry
	restoreCmd string
	saveCmd    string
	restoreArg []string
	ipv        string

	// kernel is our view of the kernel: what iptables-save showed, updated
	// with every successful write. nil means "read it first".
	kernel map[string]kernelTable
	// memo holds the last Apply's renderings by chain, so a Chain given
	// again (e.g. by rules.ChainCache) is not rendered and hashed again.
	memo map[*Chain]*renderedChain
	// spareMemo (emptied) and rendered are Apply's to reuse, so that an
	// Apply allocates for the chains that changed only.
	spareMemo map[*Chain]*renderedChain
	rendered  map[string]*renderedTable
	names     []string // planTable's scratch
	// applied is what the last successful Apply converged the kernel to.
	applied map[string]*Desired
}

// New returns Tables that have not touched the kernel yet.
func New(cfg Config) *Tables {
	if len(cfg.OwnedPrefixes) == 0 {
		cfg.OwnedPrefixes = []string{"cali-"}
	}
	if cfg.Log == nil {
		cfg.Log = logrus.NewEntry(logrus.StandardLogger())
	}
	t := &Tables{
		cfg:        cfg,
		ipv:        strconv.Itoa(cfg.IPVersion),
		restoreCmd: BinaryName(cfg.IPVersion, cfg.Backend, "restore", cfg.LookPath),
		saveCmd:    BinaryName(cfg.IPVersion, cfg.Backend, "save", cfg.LookPath),
		restoreArg: []string{"--noflush"},
	}
	if cfg.Backend == "legacy" {
		// The xtables lock is a file shared by every network namespace.
		t.restoreArg = append(t.restoreArg, "--wait", "10")
	}
	t.log = cfg.Log.WithFields(logrus.Fields{"ipVersion": cfg.IPVersion, "backend": cfg.Backend})
	return t
}

// Invalidate makes the next Apply read the kernel back first, so it repairs
// whatever was changed behind our back (the periodic refresh).
func (t *Tables) Invalidate() { t.kernel = nil }

// Apply converges the kernel to desired, keyed by table name; tables not in
// desired are left alone. On a failed write it re-reads the kernel and
// retries, up to three attempts. The Desired and their Chains must not be
// modified afterwards: given the same *Desired as the last successful
// Apply, with the view of the kernel still valid, Apply has nothing to do;
// given the same *Chain, it reuses its rendering.
func (t *Tables) Apply(ctx context.Context, desired map[string]*Desired) error {
	if t.kernel != nil && t.applied != nil && maps.Equal(desired, t.applied) {
		return nil
	}
	t.applied = nil
	next := t.spareMemo
	if next == nil {
		next = make(map[*Chain]*renderedChain, len(t.memo))
	}
	if t.rendered == nil {
		t.rendered = map[string]*renderedTable{}
	}
	rendered := renderDesired(desired, t.memo, next, t.rendered)
	clear(t.memo)
	t.memo, t.spareMemo = next, t.memo
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if attempt > 0 {
			t.log.WithError(err).WithField("attempt", attempt).Warn("iptables-restore failed; re-reading and retrying")
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(attempt*50) * time.Millisecond):
			}
		}
		if t.kernel == nil {
			if err = t.load(ctx); err != nil {
				continue
			}
		}
		input, commit := t.plan(rendered)
		if len(input) > 0 {
			if err = t.restore(ctx, input); err != nil {
				t.kernel = nil
				continue
			}
			commit()
		}
		t.applied = desired
		t.updateGauges()
		return nil
	}
	return err
}

// Plan returns the iptables-restore input Apply would write for desired
// against the current view of the kernel (an empty kernel when it has not
// been read), without writing it.
func (t *Tables) Plan(desired map[string]*Desired) []byte {
	if t.kernel == nil {
		saved := t.kernel
		t.kernel = map[string]kernelTable{}
		defer func() { t.kernel = saved }()
	}
	input, _ := t.plan(renderDesired(desired, nil, nil, map[string]*renderedTable{}))
	return input
}

func (t *Tables) load(ctx context.Context) error {
	m := t.cfg.Metrics
	out, err := t.cfg.Runner.Run(ctx, nil, t.saveCmd)
	if m != nil {
		m.saveCalls.Inc()
	}
	if err != nil {
		if m != nil {
			m.saveErrors.Inc()
		}
		return fmt.Errorf("reading iptables (IPv%d): %w", t.cfg.IPVersion, err)
	}
	t.kernel = parseSave(out, t.cfg.OwnedPrefixes)
	return nil
}

func (t *Tables) restore(ctx context.Context, input []byte) error {
	m := t.cfg.Metrics
	_, err := t.cfg.Runner.Run(ctx, input, t.restoreCmd, t.restoreArg...)
	if m != nil {
		m.restoreCalls.Inc()
	}
	if err != nil {
		if m != nil {
			m.restoreErrors.Inc()
		}
		return fmt.Errorf("writing iptables (IPv%d): %w", t.cfg.IPVersion, err)
	}
	return nil
}

// renderedChain is a desired chain with its rule bodies and hashes computed once.
type renderedChain struct {
	name   string
	bodies []string
	hashes []string
}

func renderChain(c *Chain) *renderedChain {
	rc := &renderedChain{name: c.Name, bodies: make([]string, len(c.Rules))}
	for i := range c.Rules {
		rc.bodies[i] = c.Rules[i].body()
	}
	rc.hashes = ruleHashes(c.Name, rc.bodies)
	return rc
}

// renderedHooks are the rules we keep in one chain we do not own.
type renderedHooks struct {
	insBodies, appBodies []string
	insHashes, appHashes []string
}

type renderedTable struct {
	chains []*renderedChain // sorted by name
	byName map[string]*renderedChain
	hooks  map[string]*renderedHooks
}

// renderDesired renders every table into out, taking a chain's rendering
// from prev when there is one and recording each in next (when not nil).
// It reuses the maps and slices of the tables out already holds.
func renderDesired(desired map[string]*Desired, prev, next map[*Chain]*renderedChain, out map[string]*renderedTable) map[string]*renderedTable {
	for table := range out {
		if desired[table] == nil {
			delete(out, table)
		}
	}
	for table, d := range desired {
		if d == nil {
			continue
		}
		rt := out[table]
		if rt == nil {
			rt = &renderedTable{byName: make(map[string]*renderedChain, len(d.Chains)), hooks: map[string]*renderedHooks{}}
		}
		clear(rt.byName)
		clear(rt.hooks)
		rt.chains = rt.chains[:0]
		for _, c := range d.Chains {
			rc := prev[c]
			if rc == nil {
				rc = renderChain(c)
			}
			if next != nil {
				next[c] = rc
			}
			rt.byName[c.Name] = rc
		}
		for _, rc := range rt.byName {
			rt.chains = append(rt.chains, rc)
		}
		slices.SortFunc(rt.chains, func(a, b *renderedChain) int { return strings.Compare(a.name, b.name) })
		names := map[string]bool{}
		for n := range d.Inserts {
			names[n] = true
		}
		for n := range d.Appends {
			names[n] = true
		}
		for n := range names {
			h := &renderedHooks{}
			for _, r := range d.Inserts[n] {
				h.insBodies = append(h.insBodies, r.body())
			}
			for _, r := range d.Appends[n] {
				h.appBodies = append(h.appBodies, r.body())
			}
			all := ruleHashes(n, append(append([]string(nil), h.insBodies...), h.appBodies...))
			h.insHashes, h.appHashes = all[:len(h.insBodies)], all[len(h.insBodies):]
			rt.hooks[n] = h
		}
		out[table] = rt
	}
	return out
}

func (t *Tables) owned(name string) bool { return hasAnyPrefix(name, t.cfg.OwnedPrefixes) }

// plan computes the restore input for the delta between the kernel view and
// rendered, and a commit func that updates the view once it is written.
func (t *Tables) plan(rendered map[string]*renderedTable) ([]byte, func()) {
	var buf bytes.Buffer
	var commits []func()
	for _, table := range TableNames {
		rt := rendered[table]
		if rt == nil {
			continue
		}
		kt := t.kernel[table]
		in, commit := t.planTable(table, rt, kt)
		if len(in) > 0 {
			buf.Write(in)
			commits = append(commits, commit)
		}
	}
	return buf.Bytes(), func() {
		for _, c := range commits {
			c()
		}
	}
}

func (t *Tables) planTable(table string, rt *renderedTable, kt kernelTable) ([]byte, func()) {
	var decl, hooks, rules, tail bytes.Buffer
	var rewritten []*renderedChain
	var deleted []string
	newHooks := map[string][]kernelRule{}
	lines := 0

	for _, rc := range rt.chains {
		if kc := kt[rc.name]; kc != nil && sameHashes(kc.rules, rc.hashes) {
			continue
		}
		fmt.Fprintf(&decl, ":%s - [0:0]\n", rc.name)
		for i, body := range rc.bodies {
			writeRule(&rules, "-A", rc.name, 0, rc.hashes[i], body)
		}
		lines += 1 + len(rc.bodies)
		rewritten = append(rewritten, rc)
	}

	kernelNames := t.names[:0]
	for name := range kt {
		kernelNames = append(kernelNames, name)
	}
	sort.Strings(kernelNames)
	t.names = kernelNames
	for _, name := range kernelNames {
		kc := kt[name]
		if kc.owned && rt.byName[name] == nil {
			fmt.Fprintf(&decl, ":%s - [0:0]\n", name)
			fmt.Fprintf(&tail, "-X %s\n", name)
			lines += 2
			deleted = append(deleted, name)
		}
	}

	// Chains we do not own: our hooks, and our stray rules in others.
	hookNames := map[string]bool{}
	for n := range rt.hooks {
		hookNames[n] = true
	}
	for _, name := range kernelNames {
		if kc := kt[name]; !kc.owned && slices.ContainsFunc(kc.rules, func(r kernelRule) bool { return r.ours }) {
			hookNames[name] = true
		}
	}
	sortedHooks := make([]string, 0, len(hookNames))
	for n := range hookNames {
		sortedHooks = append(sortedHooks, n)
	}
	sort.Strings(sortedHooks)
	for _, name := range sortedHooks {
		if t.owned(name) {
			continue
		}
		h := rt.hooks[name]
		if h == nil {
			h = &renderedHooks{}
		}
		kc := kt[name]
		if hooksInPlace(kc, h) {
			continue
		}
		var kept []kernelRule
		if kc != nil {
			for _, r := range kc.rules {
				if !r.ours {
					kept = append(kept, r)
					continue
				}
				fmt.Fprintf(&hooks, "-D %s %s\n", name, r.spec)
				lines++
			}
		}
		var ins, app []kernelRule
		for i, body := range h.insBodies {
			writeRule(&hooks, "-I", name, i+1, h.insHashes[i], body)
			ins = append(ins, kernelRule{hash: h.insHashes[i], ours: true, spec: hashedSpec(h.insHashes[i], body)})
		}
		for i, body := range h.appBodies {
			writeRule(&hooks, "-A", name, 0, h.appHashes[i], body)
			app = append(app, kernelRule{hash: h.appHashes[i], ours: true, spec: hashedSpec(h.appHashes[i], body)})
		}
		lines += len(ins) + len(app)
		newHooks[name] = append(append(ins, kept...), app...)
	}

	if decl.Len()+hooks.Len()+rules.Len()+tail.Len() == 0 {
		return nil, func() {}
	}
	var out bytes.Buffer
	out.Grow(decl.Len() + hooks.Len() + rules.Len() + tail.Len() + 32)
	fmt.Fprintf(&out, "*%s\n", table)
	out.Write(decl.Bytes())
	out.Write(hooks.Bytes())
	out.Write(rules.Bytes())
	out.Write(tail.Bytes())
	out.WriteString("COMMIT\n")
	return out.Bytes(), func() {
		if t.kernel == nil {
			return
		}
		kt := t.kernel[table]
		if kt == nil {
			kt = kernelTable{}
			t.kernel[table] = kt
		}
		for _, rc := range rewritten {
			rs := make([]kernelRule, len(rc.hashes))
			for i, h := range rc.hashes {
				rs[i] = kernelRule{hash: h, ours: true}
			}
			kt[rc.name] = &kernelChain{owned: true, rules: rs}
		}
		for _, name := range deleted {
			delete(kt, name)
		}
		for name, rs := range newHooks {
			if kc := kt[name]; kc != nil {
				kc.rules = rs
			} else {
				kt[name] = &kernelChain{rules: rs}
			}
		}
		if m := t.cfg.Metrics; m != nil {
			m.linesExecuted.WithLabelValues(t.ipv, table).Add(float64(lines))
		}
	}
}

func hashedSpec(hash, body string) string {
	s := `-m comment --comment "` + RuleHashPrefix + hash + `"`
	if body != "" {
		s += " " + body
	}
	return s
}

func writeRule(b *bytes.Buffer, op, chain string, pos int, hash, body string) {
	b.WriteString(op)
	b.WriteByte(' ')
	b.WriteString(chain)
	if pos > 0 {
		b.WriteByte(' ')
		b.WriteString(strconv.Itoa(pos))
	}
	b.WriteByte(' ')
	b.WriteString(hashedSpec(hash, body))
	b.WriteByte('\n')
}

func sameHashes(rules []kernelRule, hashes []string) bool {
	if len(rules) != len(hashes) {
		return false
	}
	for i, r := range rules {
		if r.hash != hashes[i] {
			return false
		}
	}
	return true
}

// hooksInPlace reports whether chain kc has exactly our inserts at its top,
// our appends at its bottom and none of our rules in between.
func hooksInPlace(kc *kernelChain, h *renderedHooks) bool {
	var rules []kernelRule
	if kc != nil {
		rules = kc.rules
	}
	ni, na := len(h.insHashes), len(h.appHashes)
	if len(rules) < ni+na {
		return false
	}
	for i, hash := range h.insHashes {
		if !rules[i].ours || rules[i].hash != hash {
			return false
		}
	}
	for i, hash := range h.appHashes {
		r := rules[len(rules)-na+i]
		if !r.ours || r.hash != hash {
			return false
		}
	}
	for _, r := range rules[ni : len(rules)-na] {
		if r.ours {
			return false
		}
	}
	return true
}

func (t *Tables) updateGauges() {
	m := t.cfg.Metrics
	if m == nil || t.kernel == nil {
		return
	}
	for _, table := range TableNames {
		chains, rules := 0, 0
		for _, kc := range t.kernel[table] {
			if kc.owned {
				chains++
				rules += len(kc.rules)
			}
		}
		m.chains.WithLabelValues(t.ipv, table).Set(float64(chains))
		m.rules.WithLabelValues(t.ipv, table).Set(float64(rules))
	}
}
