package ipsets

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/calico-etcd/calico/felix/dataplane/runner"
)

// DefaultMaxElem is the maxelem of every set we create, as Calico.
const DefaultMaxElem = 1048576

// Config configures a Manager.
type Config struct {
	Runner  runner.Runner
	Log     *logrus.Entry
	Metrics *Metrics // optional
	MaxElem int      // default DefaultMaxElem
}

// kernelSet is a set as `ipset save` showed it (or as we last wrote it).
type kernelSet struct {
	typ, family string
	maxElem     int
	members     map[string]struct{}
	// src is the desired set whose members these are (shared, never
	// modified), or nil when read from the kernel.
	src *Set
}

// Manager converges the kernel's IP sets (both families) to desired ones.
type Manager struct {
	cfg Config
	log *logrus.Entry
	// kernel is our view of the kernel's sets, by name; nil: read it first.
	// Sets we do not own are kept with nil members.
	kernel  map[string]*kernelSet
	desired map[string]*Set
	tempSeq int
}

// New returns a Manager that has not touched the kernel.
func New(cfg Config) *Manager {
	if cfg.MaxElem == 0 {
		cfg.MaxElem = DefaultMaxElem
	}
	if cfg.Log == nil {
		cfg.Log = logrus.NewEntry(logrus.StandardLogger())
	}
	return &Manager{cfg: cfg, log: cfg.Log}
}

// Invalidate makes the next ApplyUpdates read the kernel first.
func (m *Manager) Invalidate() { m.kernel = nil }

// Owned reports whether a set name is one this package manages.
func Owned(name string) bool {
	for _, p := range OwnedPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// ApplyUpdates creates the desired sets and brings their members up to
// date. It destroys nothing: call ApplyDeletions once no rule refers to
// the unwanted sets any more.
func (m *Manager) ApplyUpdates(ctx context.Context, desired map[string]*Set) error {
	m.desired = desired
	if m.kernel == nil {
		if err := m.load(ctx); err != nil {
			return err
		}
	}
	input, commit := m.planUpdates(desired)
	if len(input) == 0 {
		m.updateGauges()
		return nil
	}
	if err := m.restore(ctx, input); err != nil {
		m.kernel = nil
		return fmt.Errorf("updating IP sets: %w", err)
	}
	commit()
	m.updateGauges()
	return nil
}

// ApplyDeletions destroys owned sets that the last ApplyUpdates did not
// want. A set still referenced by a rule outside our control cannot be
// destroyed; that is logged and tried again next time.
func (m *Manager) ApplyDeletions(ctx context.Context) error {
	if m.kernel == nil || m.desired == nil {
		return nil
	}
	var stale []string
	for name := range m.kernel {
		if Owned(name) && m.desired[name] == nil {
			stale = append(stale, name)
		}
	}
	if len(stale) == 0 {
		return nil
	}
	sort.Strings(stale)
	var b bytes.Buffer
	for _, name := range stale {
		fmt.Fprintf(&b, "destroy %s\n", name)
	}
	if err := m.restore(ctx, b.Bytes()); err == nil {
		for _, name := range stale {
			delete(m.kernel, name)
		}
		m.updateGauges()
		return nil
	}
	// One at a time, so one busy set does not keep the others.
	var failed []string
	for _, name := range stale {
		if err := m.restore(ctx, []byte("destroy "+name+"\n")); err != nil {
			failed = append(failed, name)
			m.log.WithError(err).WithField("set", name).Warn("cannot destroy stale IP set yet")
			continue
		}
		delete(m.kernel, name)
	}
	m.updateGauges()
	if len(failed) > 0 {
		return fmt.Errorf("destroying IP sets %s: still in use", strings.Join(failed, ","))
	}
	return nil
}

// Plan returns the `ipset restore` input ApplyUpdates would write, against
// an empty kernel when it has not been read.
func (m *Manager) Plan(desired map[string]*Set) []byte {
	if m.kernel == nil {
		saved := m.kernel
		m.kernel = map[string]*kernelSet{}
		defer func() { m.kernel = saved }()
	}
	in, _ := m.planUpdates(desired)
	return in
}

func (m *Manager) load(ctx context.Context) error {
	out, err := m.run(ctx, nil, "save")
	if err != nil {
		return fmt.Errorf("listing IP sets: %w", err)
	}
	m.kernel = parseSave(out)
	return nil
}

func (m *Manager) restore(ctx context.Context, input []byte) error {
	_, err := m.run(ctx, input, "restore", "-exist")
	if err == nil && m.cfg.Metrics != nil {
		m.cfg.Metrics.linesExecuted.Add(float64(bytes.Count(input, []byte{'\n'})))
	}
	return err
}

func (m *Manager) run(ctx context.Context, stdin []byte, args ...string) ([]byte, error) {
	out, err := m.cfg.Runner.Run(ctx, stdin, "ipset", args...)
	if mt := m.cfg.Metrics; mt != nil {
		mt.calls.Inc()
		if err != nil {
			mt.errors.Inc()
		}
	}
	return out, err
}

func (m *Manager) nextTemp(fam string) string {
	m.tempSeq++
	p := "cali4t"
	if fam == "inet6" {
		p = "cali6t"
	}
	return p + strconv.Itoa(m.tempSeq)
}

func (m *Manager) planUpdates(desired map[string]*Set) ([]byte, func()) {
	names := make([]string, 0, len(desired))
	for n := range desired {
		names = append(names, n)
	}
	sort.Strings(names)
	var b bytes.Buffer
	type change struct {
		name string
		ks   *kernelSet
	}
	var changes []change
	for _, name := range names {
		want := desired[name]
		have := m.kernel[name]
		switch {
		case have == nil:
			m.writeCreate(&b, name, want)
			for _, mem := range want.SortedMembers() {
				writeMember(&b, "add ", name, mem)
			}
		case have.typ != want.Type || have.family != want.Family || have.maxElem != m.cfg.MaxElem:
			tmp := m.nextTemp(want.Family)
			m.writeCreate(&b, tmp, want)
			for _, mem := range want.SortedMembers() {
				writeMember(&b, "add ", tmp, mem)
			}
			fmt.Fprintf(&b, "swap %s %s\ndestroy %s\n", tmp, name, tmp)
		case have.src == want:
			continue // written from this very set: nothing to diff
		default:
			var adds, dels []string
			for mem := range want.Members {
				if _, ok := have.members[mem]; !ok {
					adds = append(adds, mem)
				}
			}
			for mem := range have.members {
				if _, ok := want.Members[mem]; !ok {
					dels = append(dels, mem)
				}
			}
			if len(adds)+len(dels) == 0 {
				continue
			}
			sort.Strings(dels)
			sort.Strings(adds)
			for _, mem := range dels {
				writeMember(&b, "del ", name, mem)
			}
			for _, mem := range adds {
				writeMember(&b, "add ", name, mem)
			}
		}
		changes = append(changes, change{name, &kernelSet{typ: want.Type, family: want.Family, maxElem: m.cfg.MaxElem, members: want.Members, src: want}})
	}
	return b.Bytes(), func() {
		for _, c := range changes {
			m.kernel[c.name] = c.ks
		}
	}
}

// writeMember writes "<verb><set> <member>\n" (the restore input is
// mostly these lines: no fmt).
func writeMember(b *bytes.Buffer, verb, set, member string) {
	b.WriteString(verb)
	b.WriteString(set)
	b.WriteByte(' ')
	b.WriteString(member)
	b.WriteByte('\n')
}

func (m *Manager) writeCreate(b *bytes.Buffer, name string, s *Set) {
	fmt.Fprintf(b, "create %s %s family %s maxelem %d\n", name, s.Type, s.Family, m.cfg.MaxElem)
}

// parseSave reads `ipset save` output.
func parseSave(out []byte) map[string]*kernelSet {
	sets := map[string]*kernelSet{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "create":
			ks := &kernelSet{members: map[string]struct{}{}}
			if len(f) > 2 {
				ks.typ = f[2]
			}
			for i := 3; i+1 < len(f); i++ {
				switch f[i] {
				case "family":
					ks.family = f[i+1]
				case "maxelem":
					ks.maxElem, _ = strconv.Atoi(f[i+1])
				}
			}
			sets[f[1]] = ks
		case "add":
			if ks := sets[f[1]]; ks != nil && len(f) > 2 {
				ks.members[f[2]] = struct{}{}
			}
		}
	}
	return sets
}

func (m *Manager) updateGauges() {
	mt := m.cfg.Metrics
	if mt == nil || m.kernel == nil {
		return
	}
	ours := 0
	for name := range m.kernel {
		if Owned(name) {
			ours++
		}
	}
	mt.total.Set(float64(len(m.kernel)))
	mt.calico.Set(float64(ours))
}

// Metrics are the felix_ipset* collectors.
type Metrics struct {
	calls, errors, linesExecuted prometheus.Counter
	total, calico                prometheus.Gauge
}

// NewMetrics makes unregistered collectors.
func NewMetrics() *Metrics {
	return &Metrics{
		calls:         prometheus.NewCounter(prometheus.CounterOpts{Name: "felix_ipset_calls", Help: "Number of ipset commands executed."}),
		errors:        prometheus.NewCounter(prometheus.CounterOpts{Name: "felix_ipset_errors", Help: "Number of ipset command failures."}),
		linesExecuted: prometheus.NewCounter(prometheus.CounterOpts{Name: "felix_ipset_lines_executed", Help: "Number of ipset operations executed."}),
		total:         prometheus.NewGauge(prometheus.GaugeOpts{Name: "felix_ipsets_total", Help: "Total number of active IP sets."}),
		calico:        prometheus.NewGauge(prometheus.GaugeOpts{Name: "felix_ipsets_calico", Help: "Number of active Calico IP sets."}),
	}
}

// Collectors returns the collectors for registration.
func (mt *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{mt.calls, mt.errors, mt.linesExecuted, mt.total, mt.calico}
}
