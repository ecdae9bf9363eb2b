package config

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/calico-etcd/calico/felix/dpapi"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/apiconfig"
	"github.com/calico-etcd/calico/libcalico/felixparams"
	"github.com/calico-etcd/calico/libcalico/nodeinfo"
)

// Source is where a value came from; a higher Source wins.
type Source int

// Sources, lowest precedence first.
const (
	SourceDefault Source = iota
	SourceDatastoreGlobal
	SourceDatastoreNode
	SourceFile
	SourceEnv
	numSources
)

func (s Source) String() string {
	return [...]string{"default", "FelixConfiguration default", "FelixConfiguration node", "config file", "environment"}[s]
}

// Loader gathers raw values from every source and resolves them into a
// Config. Feed it env and file once at start, and the datastore's
// FelixConfigurations whenever they change.
type Loader struct {
	log    *logrus.Entry
	getenv func(string) string
	raw    [numSources]map[string]string // lower-case param name → value
	// refused holds, per source, the set parameters felix does not act on.
	refused [numSources][]felixparams.Refusal
	// Paths and settings that are not parameters.
	configFile, nodenameFile, runDir, mtuFile string
	datastore                                 *apiconfig.Spec
}

// Options are the flag-given paths.
type Options struct {
	ConfigFile   string // "" = DefaultConfigFile if it exists
	NodenameFile string // "" = nodeinfo.DefaultNameFile
	MTUFile      string // "" = DefaultMTUFile
	RunDir       string // "" = CALICO_RUN_DIR or DefaultRunDir
}

// NewLoader reads the environment (environ as os.Environ gives it) and
// the config file. A missing default config file is fine; a named one
// must exist. log may not be nil.
func NewLoader(opts Options, environ []string, log *logrus.Entry) (*Loader, error) {
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	l := &Loader{log: log, getenv: func(k string) string { return env[k] }}
	for i := range l.raw {
		l.raw[i] = map[string]string{}
	}
	for k, v := range env {
		if len(k) > 6 && strings.EqualFold(k[:6], "FELIX_") {
			l.set(SourceEnv, k[6:], v)
		}
	}
	l.configFile, l.nodenameFile, l.runDir = opts.ConfigFile, opts.NodenameFile, opts.RunDir
	if l.nodenameFile == "" {
		l.nodenameFile = nodeinfo.DefaultNameFile
	}
	if l.runDir == "" {
		l.runDir = firstSet(env["CALICO_RUN_DIR"], DefaultRunDir)
	}
	l.mtuFile = firstSet(opts.MTUFile, DefaultMTUFile)
	file, explicit := l.configFile, l.configFile != ""
	if !explicit {
		file = DefaultConfigFile
	}
	data, err := os.ReadFile(file)
	switch {
	case err == nil:
		l.configFile = file
		if err := l.parseINI(data); err != nil {
			return nil, fmt.Errorf("config file %s: %w", file, err)
		}
	case !explicit && errors.Is(err, fs.ErrNotExist):
		l.configFile = ""
	default:
		return nil, fmt.Errorf("reading config file: %w", err)
	}
	if spec, err := apiconfig.FromEnv(l.getenv); err == nil {
		l.datastore = spec
	} else {
		log.WithError(err).Warn("Ignoring invalid datastore environment")
	}
	return l, nil
}

// set records a raw value for a known parameter. A Calico parameter
// felix does not act on is recorded as refused (see Refusals) unless its
// value is quiet; any other name is ignored with a warning.
func (l *Loader) set(src Source, name, value string) {
	key := strings.ToLower(strings.TrimSpace(name))
	p, ok := params[key]
	if !ok {
		if r, ok := felixparams.Check(name, value); ok {
			l.refused[src] = append(l.refused[src], r)
			return
		}
		if _, known := felixparams.ByParam(name); !known {
			l.log.WithFields(logrus.Fields{"param": name, "source": src.String()}).Warn("Ignoring unknown parameter")
		}
		return
	}
	if p.local && (src == SourceDatastoreGlobal || src == SourceDatastoreNode) {
		l.log.WithFields(logrus.Fields{"param": p.name, "source": src}).Warn("Ignoring parameter that can only be set locally")
		return
	}
	l.raw[src][key] = value
}

// parseINI reads the [global] section of a felix.cfg.
func (l *Loader) parseINI(data []byte) error {
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && strings.HasSuffix(line, "]"):
			section = strings.ToLower(strings.TrimSpace(line[1 : len(line)-1]))
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				k, v, ok = strings.Cut(line, ":")
			}
			if !ok {
				return fmt.Errorf("line %d: want key = value", n)
			}
			if section == "global" {
				l.set(SourceFile, k, strings.TrimSpace(v))
			}
		}
	}
	return sc.Err()
}

// SetDatastore replaces the values from the FelixConfiguration resources
// "default" and "node.<name>" (either may be nil). Fields felix does not
// act on (libcalico/felixparams) are recorded as refused unless quiet.
func (l *Loader) SetDatastore(global, node *v3.FelixConfiguration) {
	for _, x := range []struct {
		src Source
		fc  *v3.FelixConfiguration
	}{{SourceDatastoreGlobal, global}, {SourceDatastoreNode, node}} {
		l.raw[x.src] = map[string]string{}
		l.refused[x.src] = nil
		if x.fc == nil {
			continue
		}
		l.refused[x.src] = felixparams.Refusals(&x.fc.Spec)
		b, err := json.Marshal(x.fc.Spec)
		if err != nil {
			continue
		}
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		for k, v := range m {
			if _, ok := felixparams.ByField(k); ok {
				continue // refused above, or quiet
			}
			name := felixparams.ParamOf(k)
			if _, ok := params[strings.ToLower(name)]; !ok {
				l.log.WithFields(logrus.Fields{"field": k, "source": x.src.String()}).Warn("Ignoring unknown FelixConfiguration field")
				continue
			}
			l.set(x.src, name, jsonValue(k, v))
		}
	}
}

// Refusal is a parameter some source sets that felix does not act on.
type Refusal struct {
	felixparams.Refusal
	Source Source
}

// refusals lists every source's refusals, highest precedence first.
func (l *Loader) refusals() []Refusal {
	var out []Refusal
	for s := numSources - 1; s > SourceDefault; s-- {
		for _, r := range l.refused[s] {
			out = append(out, Refusal{Refusal: r, Source: s})
		}
	}
	return out
}

// jsonValue renders a FelixConfiguration JSON value as a raw string.
func jsonValue(name string, v any) string {
	switch v := v.(type) {
	case []any:
		if strings.HasPrefix(strings.ToLower(name), "failsafe") {
			b, _ := json.Marshal(v)
			var pps []v3.ProtoPort
			_ = json.Unmarshal(b, &pps)
			return formatPortList(protoPorts(pps))
		}
		var parts []string
		for _, e := range v {
			if r, ok := tableRange(e); ok {
				parts = append(parts, r)
				continue
			}
			parts = append(parts, felixparams.Render(e))
		}
		return strings.Join(parts, ",")
	case map[string]any:
		if r, ok := tableRange(v); ok {
			return r
		}
	}
	return felixparams.Render(v)
}

// tableRange renders a route table range object {min, max} as "min-max".
func tableRange(v any) (string, bool) {
	m, ok := v.(map[string]any)
	if !ok {
		return "", false
	}
	lo, ok1 := m["min"].(float64)
	hi, ok2 := m["max"].(float64)
	if !ok1 || !ok2 || len(m) != 2 {
		return "", false
	}
	return fmt.Sprintf("%.0f-%.0f", lo, hi), true
}

// Hostname is the node name: FelixHostname from env or file, else
// NODENAME, else the nodename file, else the (lower-cased) hostname, as
// the other daemons resolve it (libcalico/nodeinfo).
func (l *Loader) Hostname() string {
	for _, src := range []Source{SourceEnv, SourceFile} {
		if v := strings.TrimSpace(l.raw[src]["felixhostname"]); v != "" {
			return v
		}
	}
	name, err := nodeinfo.ResolveName(nodeinfo.NameSource{Getenv: l.getenv, File: l.nodenameFile})
	if err != nil {
		l.log.WithError(err).Warn("Cannot resolve the node name")
	}
	return name
}

// Config resolves every parameter: the highest source with a valid value
// wins; each invalid value is logged with its parameter, value and source.
func (l *Loader) Config() *Config {
	c := &Config{sources: map[string]Source{}}
	cv := reflect.ValueOf(c).Elem()
	for key, p := range params {
		val, src := p.defValue, SourceDefault
		for s := numSources - 1; s > SourceDefault; s-- {
			raw, ok := l.raw[s][key]
			if !ok {
				continue
			}
			v, err := p.parse(raw)
			if err != nil {
				l.log.WithFields(logrus.Fields{"param": p.name, "value": raw, "source": s.String(), "reason": err.Error()}).
					Warn("Invalid config value; using the value from a lower-precedence source or the default")
				continue
			}
			val, src = v, s
			break
		}
		cv.Field(p.field).Set(val)
		c.sources[key] = src
	}
	if c.FelixHostname == "" {
		c.FelixHostname = l.Hostname()
	}
	c.ConfigFile, c.NodenameFile, c.RunDir, c.Datastore = l.configFile, l.nodenameFile, l.runDir, l.datastore
	c.MTUFile = l.mtuFile
	for _, name := range []string{"GOGC", "GOMEMLIMIT", "GOMAXPROCS"} {
		if l.getenv(name) != "" {
			c.GoRuntimeEnv = append(c.GoRuntimeEnv, name)
		}
	}
	c.refusals = l.refusals()
	c.loader = l
	return c
}

// RestartNeeded lists the parameters that differ between a running
// config and a new one and cannot be applied live.
func RestartNeeded(old, cur *Config) []string {
	ov, nv := reflect.ValueOf(old).Elem(), reflect.ValueOf(cur).Elem()
	var out []string
	for _, p := range params {
		if p.live {
			continue
		}
		if !reflect.DeepEqual(ov.Field(p.field).Interface(), nv.Field(p.field).Interface()) {
			out = append(out, p.name)
		}
	}
	sort.Strings(out)
	return out
}

// Params returns every parameter felix acts on, sorted.
func Params() []string {
	var out []string
	for _, p := range params {
		out = append(out, p.name)
	}
	slices.Sort(out)
	return out
}

func protoPorts(in []v3.ProtoPort) []dpapi.ProtoPort {
	out := make([]dpapi.ProtoPort, 0, len(in))
	for _, p := range in {
		proto := strings.ToLower(p.Protocol)
		if proto == "" {
			proto = "tcp"
		}
		out = append(out, dpapi.ProtoPort{Protocol: proto, Port: p.Port, Net: p.Net})
	}
	return out
}
