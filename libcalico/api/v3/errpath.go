package v3

import (
	"encoding/json"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// valuePath finds where in obj (a resource's JSON) a value that decodes
// itself (Port, Protocol, Duration ...) refuses it, as a path such as
// "spec.ingress[0].destination.ports[1]": encoding/json returns such
// errors without saying where. It returns "" when no such value fails.
func valuePath(obj []byte, into Resource) string {
	var v any
	dec := json.NewDecoder(strings.NewReader(string(obj)))
	dec.UseNumber()
	if dec.Decode(&v) != nil {
		return ""
	}
	path, _ := badValue(v, reflect.TypeOf(into), "")
	return path
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

// badValue walks v as encoding/json would decode it into t and returns the
// path of the first self-decoding value that fails.
func badValue(v any, t reflect.Type, path string) (string, bool) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		b, err := json.Marshal(v)
		if err != nil {
			return "", false
		}
		if json.Unmarshal(b, reflect.New(t).Interface()) != nil {
			return path, true
		}
		return "", false
	}
	switch t.Kind() {
	case reflect.Struct:
		obj, ok := v.(map[string]any)
		if !ok {
			return "", false
		}
		for _, f := range jsonFields(t) {
			if val, ok := lookupField(obj, f.name); ok {
				if p, bad := badValue(val, f.typ, joinPath(path, f.name)); bad {
					return p, true
				}
			}
		}
	case reflect.Slice, reflect.Array:
		arr, ok := v.([]any)
		if !ok {
			return "", false
		}
		for i, e := range arr {
			if p, bad := badValue(e, t.Elem(), path+"["+strconv.Itoa(i)+"]"); bad {
				return p, true
			}
		}
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			return "", false
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if p, bad := badValue(m[k], t.Elem(), joinPath(path, k)); bad {
				return p, true
			}
		}
	}
	return "", false
}

type jsonField struct {
	name string
	typ  reflect.Type
}

// jsonFields lists t's fields by JSON name, with embedded structs
// without a name of their own inlined, as encoding/json does.
func jsonFields(t reflect.Type) []jsonField {
	var out []jsonField
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if f.Anonymous && name == "" && ft.Kind() == reflect.Struct {
			out = append(out, jsonFields(ft)...)
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, jsonField{name, f.Type})
	}
	return out
}

// lookupField finds key in obj as encoding/json matches names: exactly,
// else ignoring case.
func lookupField(obj map[string]any, key string) (any, bool) {
	if v, ok := obj[key]; ok {
		return v, true
	}
	for k, v := range obj {
		if strings.EqualFold(k, key) {
			return v, true
		}
	}
	return nil, false
}

func joinPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}
