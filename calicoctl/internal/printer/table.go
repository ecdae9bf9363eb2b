package printer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"text/template"

	"github.com/calico-etcd/calico/calicoctl/internal/kinds"
	api "github.com/calico-etcd/calico/libcalico/api/v3"
)

// Table prints the ps-style table of each kind: the kind's default
// columns, its wide columns, or the columns named by custom-columns. A
// custom column is either a heading the kind knows (Calico's form,
// "NAME,CIDR") or a kubectl-style "HEADING:.json.path".
type Table struct {
	Wide    bool
	Columns []string
	Options
}

// Print implements Printer. Consecutive resources of one kind share a
// table; each table is followed by a blank line, as in Calico.
func (t *Table) Print(w io.Writer, objs []any) error {
	for _, g := range group(objs) {
		if err := t.printGroup(w, g); err != nil {
			return err
		}
	}
	return nil
}

// group folds consecutive single resources of one kind into lists.
func group(objs []any) []*List {
	var out []*List
	for _, o := range objs {
		switch o := o.(type) {
		case *List:
			out = append(out, o)
		case api.Resource:
			kind := o.GetTypeMeta().Kind
			if n := len(out); n > 0 && out[n-1].ItemKind() == kind && out[n-1].ResourceVersion == "" {
				out[n-1].Items = append(out[n-1].Items, o)
				continue
			}
			l := NewList(kind, "")
			l.Items = append(l.Items, o)
			out = append(out, l)
		}
	}
	return out
}

func (t *Table) printGroup(w io.Writer, l *List) error {
	info, ok := kinds.ByKind(l.ItemKind())
	if !ok {
		return fmt.Errorf("no table format for kind %s", l.ItemKind())
	}
	headings, cols, err := t.columns(info)
	if err != nil {
		return err
	}
	var src strings.Builder
	for _, h := range headings {
		src.WriteString(h)
		src.WriteByte('\t')
	}
	src.WriteString("\n{{range .Items}}")
	for _, c := range cols {
		src.WriteString(c)
		src.WriteByte('\t')
	}
	src.WriteString("\n{{end}}")
	tmpl, err := template.New("table").Funcs(t.funcs()).Parse(src.String())
	if err != nil {
		return fmt.Errorf("parsing table template: %w", err)
	}
	tw := tabwriter.NewWriter(w, 5, 1, 3, ' ', 0)
	if err := tmpl.Execute(tw, l); err != nil {
		return fmt.Errorf("rendering table: %w", err)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err = io.WriteString(w, "\n")
	return err
}

// columns returns the headings and the template of each column.
func (t *Table) columns(info kinds.Info) ([]string, []string, error) {
	var headings, cols []string
	if t.Columns == nil {
		headings = info.Headings
		if t.Wide {
			headings = info.WideHeadings
		}
		if _, ok := info.Columns["NAMESPACE"]; ok && t.PrintNamespace {
			headings = append([]string{"NAMESPACE"}, headings...)
		}
		for _, h := range headings {
			cols = append(cols, info.Columns[h])
		}
		return headings, cols, nil
	}
	for _, c := range t.Columns {
		if h, path, ok := strings.Cut(c, ":"); ok {
			if h == "" || !strings.HasPrefix(path, ".") {
				return nil, nil, fmt.Errorf("invalid custom column %q: want HEADING:.field.path", c)
			}
			headings = append(headings, h)
			cols = append(cols, "{{jsonpath . "+strconv.Quote(path)+"}}")
			continue
		}
		col, ok := info.Columns[c]
		if !ok {
			return nil, nil, fmt.Errorf("unknown heading %s, valid values are: %s", c, strings.Join(info.HeadingNames(), ", "))
		}
		headings = append(headings, c)
		cols = append(cols, col)
	}
	return headings, cols, nil
}

func (t *Table) funcs() template.FuncMap { return funcs(t.Options) }

// funcs are the template functions of tables and go-templates.
func funcs(o Options) template.FuncMap {
	return template.FuncMap{
		"join":            join,
		"joinAndTruncate": joinAndTruncate,
		"jsonpath":        jsonPath,
		"add":             func(a, b int) int { return a + b },
		"config": func(name string) string {
			if o.Config == nil {
				return ""
			}
			return o.Config(name)
		},
	}
}

// join joins the items of a slice, or the sorted key=value pairs of a map.
func join(items any, sep string) string { return joinAndTruncate(items, sep, 0) }

// joinAndTruncate is join cut to maxLen with "..." when maxLen > 0.
func joinAndTruncate(items any, sep string, maxLen int) string {
	if items == nil {
		return ""
	}
	v := reflect.ValueOf(items)
	if v.Kind() == reflect.Map {
		pairs := make([]string, 0, v.Len())
		for _, k := range v.MapKeys() {
			pairs = append(pairs, fmt.Sprintf("%v=%v", k.Interface(), v.MapIndex(k).Interface()))
		}
		sort.Strings(pairs)
		v = reflect.ValueOf(pairs)
	}
	if v.Kind() != reflect.Slice {
		v = reflect.ValueOf([]any{items})
	}
	var buf bytes.Buffer
	for i := 0; i < v.Len(); i++ {
		if i > 0 {
			buf.WriteString(sep)
		}
		fmt.Fprint(&buf, v.Index(i).Interface())
		if maxLen > 0 && buf.Len() > maxLen {
			const suffix = "..."
			buf.Truncate(max(maxLen-len(suffix), 0))
			buf.WriteString(suffix)
			break
		}
	}
	return buf.String()
}

// jsonPath returns the value at a kubectl-style path (".spec.cidr",
// ".spec.ingress[0].action") of obj's JSON form, or "<none>".
func jsonPath(obj any, path string) (string, error) {
	data, err := json.Marshal(obj)
	if err != nil {
		return "", err
	}
	var cur any
	if err := json.Unmarshal(data, &cur); err != nil {
		return "", err
	}
	for _, part := range strings.Split(strings.TrimPrefix(path, "."), ".") {
		if part == "" {
			continue
		}
		name, idx := part, -1
		if i := strings.IndexByte(part, '['); i >= 0 && strings.HasSuffix(part, "]") {
			n, err := strconv.Atoi(part[i+1 : len(part)-1])
			if err != nil {
				return "", fmt.Errorf("bad index in %q", path)
			}
			name, idx = part[:i], n
		}
		if name != "" {
			m, ok := cur.(map[string]any)
			if !ok {
				return "<none>", nil
			}
			if cur, ok = m[name]; !ok {
				return "<none>", nil
			}
		}
		if idx >= 0 {
			s, ok := cur.([]any)
			if !ok || idx >= len(s) {
				return "<none>", nil
			}
			cur = s[idx]
		}
	}
	switch v := cur.(type) {
	case nil:
		return "<none>", nil
	case string:
		return v, nil
	case float64, bool:
		return fmt.Sprint(v), nil
	default:
		out, err := json.Marshal(v)
		return string(out), err
	}
}
