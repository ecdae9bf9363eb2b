package v3

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// constructors makes an empty resource, type metadata set, for every kind.
var constructors = map[string]func() Resource{
	KindIPPool:              func() Resource { return NewIPPool() },
	KindIPReservation:       func() Resource { return NewIPReservation() },
	KindNetworkPolicy:       func() Resource { return NewNetworkPolicy() },
	KindGlobalNetworkPolicy: func() Resource { return NewGlobalNetworkPolicy() },
	KindTier:                func() Resource { return NewTier() },
	KindProfile:             func() Resource { return NewProfile() },
	KindNetworkSet:          func() Resource { return NewNetworkSet() },
	KindGlobalNetworkSet:    func() Resource { return NewGlobalNetworkSet() },
	KindWorkloadEndpoint:    func() Resource { return NewWorkloadEndpoint() },
	KindHostEndpoint:        func() Resource { return NewHostEndpoint() },
	KindNode:                func() Resource { return NewNode() },
	KindBGPPeer:             func() Resource { return NewBGPPeer() },
	KindBGPConfiguration:    func() Resource { return NewBGPConfiguration() },
	KindBGPFilter:           func() Resource { return NewBGPFilter() },
	KindFelixConfiguration:  func() Resource { return NewFelixConfiguration() },
	KindClusterInformation:  func() Resource { return NewClusterInformation() },

	KindStagedNetworkPolicy:           func() Resource { return NewStagedNetworkPolicy() },
	KindStagedGlobalNetworkPolicy:     func() Resource { return NewStagedGlobalNetworkPolicy() },
	KindStagedKubernetesNetworkPolicy: func() Resource { return NewStagedKubernetesNetworkPolicy() },
}

// New returns an empty resource of kind with its kind and apiVersion set.
func New(kind string) (Resource, error) {
	mk, ok := constructors[kind]
	if !ok {
		return nil, fmt.Errorf("unknown kind %q", kind)
	}
	return mk(), nil
}

// checkTypeMeta accepts a known kind at projectcalico.org/v3.
func checkTypeMeta(tm TypeMeta) error {
	if tm.Kind == "" {
		return errors.New("kind is required")
	}
	if _, ok := constructors[tm.Kind]; !ok {
		return fmt.Errorf("unknown kind %q", tm.Kind)
	}
	switch tm.APIVersion {
	case APIVersion:
		return nil
	case "":
		return fmt.Errorf("apiVersion is required for kind %s (use %s)", tm.Kind, APIVersion)
	default:
		return fmt.Errorf("unsupported apiVersion %q for kind %s (use %s)", tm.APIVersion, tm.Kind, APIVersion)
	}
}

// peekTypeMeta reads kind and apiVersion from a JSON object, ignoring the rest.
func peekTypeMeta(data []byte) (TypeMeta, error) {
	var tm struct {
		Kind       any `json:"kind"`
		APIVersion any `json:"apiVersion"`
	}
	// Decode the first value only; trailing data is reported by the caller.
	if err := json.NewDecoder(bytes.NewReader(data)).Decode(&tm); err != nil {
		return TypeMeta{}, fmt.Errorf("reading kind and apiVersion: %w", err)
	}
	kind, ok1 := tm.Kind.(string)
	ver, ok2 := tm.APIVersion.(string)
	if (tm.Kind != nil && !ok1) || (tm.APIVersion != nil && !ok2) {
		return TypeMeta{}, errors.New("kind and apiVersion must be strings")
	}
	return TypeMeta{Kind: kind, APIVersion: ver}, nil
}

// DecodeJSON decodes one resource strictly: kind and apiVersion must be
// known, every field must exist in the kind's schema and nothing may
// follow the object.
func DecodeJSON(data []byte) (Resource, error) {
	tm, err := peekTypeMeta(data)
	if err != nil {
		return nil, jsonPosError(data, err)
	}
	if strings.HasSuffix(tm.Kind, "List") {
		return nil, fmt.Errorf("kind %s holds several resources: use ParseManifests", tm.Kind)
	}
	if err := checkTypeMeta(tm); err != nil {
		return nil, err
	}
	r, _ := New(tm.Kind)
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(r); err != nil {
		if path := valuePath(data, r); path != "" {
			return nil, fmt.Errorf("decoding %s: %s: %w", tm.Kind, path, err)
		}
		return nil, fmt.Errorf("decoding %s: %w", tm.Kind, jsonPosError(data, err))
	}
	if err := dec.Decode(&struct{}{}); err != io.EOF {
		return nil, fmt.Errorf("decoding %s: unexpected data after the object", tm.Kind)
	}
	return r, nil
}

// jsonPosError adds the line of a JSON syntax error.
func jsonPosError(data []byte, err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) && se.Offset <= int64(len(data)) {
		return fmt.Errorf("line %d: %w", 1+bytes.Count(data[:se.Offset], []byte("\n")), err)
	}
	return err
}

// DecodeLenient decodes a stored value of a known kind. Unknown fields are
// ignored so that data written by newer Calico versions still loads.
func DecodeLenient(kind string, data []byte) (Resource, error) {
	return DecodeLenientWith(json.Unmarshal, kind, data)
}

// DecodeLenientWith is DecodeLenient with unmarshal in place of
// encoding/json's Unmarshal: one that behaves the same, faster (see
// model.Unmarshal).
func DecodeLenientWith(unmarshal func(data []byte, v any) error, kind string, data []byte) (Resource, error) {
	r, err := New(kind)
	if err != nil {
		return nil, err
	}
	if err := unmarshal(data, r); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", kind, err)
	}
	tm := r.GetTypeMeta()
	if tm.Kind != kind {
		if tm.Kind != "" {
			return nil, fmt.Errorf("decoding %s: value has kind %q", kind, tm.Kind)
		}
		tm.Kind = kind
	}
	if tm.APIVersion == "" {
		tm.APIVersion = APIVersion
	}
	return r, nil
}

// ParseManifests reads YAML or JSON holding any number of resources:
// documents separated by "---", "kind: List" or "kind: <Kind>List" with
// items, or a top-level array. Empty documents are skipped. Each resource
// is decoded strictly, as DecodeJSON does, but YAML scalars are coerced to
// the field's type the way calicoctl's decoder does (label: 1 -> "1").
func ParseManifests(data []byte) ([]Resource, error) {
	var out []Resource
	for i, doc := range splitYAMLDocuments(data) {
		rs, err := parseDocument(doc)
		if err != nil {
			return nil, fmt.Errorf("document %d (line %d): %w", i+1, doc.line, err)
		}
		out = append(out, rs...)
	}
	return out, nil
}

// yamlDoc is one document and the line it starts on.
type yamlDoc struct {
	text []byte
	line int
}

// splitYAMLDocuments splits on "---" lines (content may follow "--- ") and
// "..." end markers.
func splitYAMLDocuments(data []byte) []yamlDoc {
	var docs []yamlDoc
	cur := yamlDoc{line: 1}
	lines := bytes.SplitAfter(data, []byte("\n"))
	for i, l := range lines {
		trimmed := bytes.TrimRight(l, " \t\r\n")
		switch {
		case bytes.Equal(trimmed, []byte("---")) || bytes.HasPrefix(l, []byte("--- ")) || bytes.HasPrefix(l, []byte("---\t")):
			docs = append(docs, cur)
			cur = yamlDoc{line: i + 1}
			if rest := bytes.TrimLeft(l[3:], " \t"); len(bytes.TrimSpace(rest)) > 0 {
				cur.text = append(cur.text, rest...)
			} else {
				cur.line = i + 2
			}
		case bytes.Equal(trimmed, []byte("...")):
			docs = append(docs, cur)
			cur = yamlDoc{line: i + 2}
		default:
			cur.text = append(cur.text, l...)
		}
	}
	return append(docs, cur)
}

var yamlLineRe = lazyRegexp(`line (\d+)`)

// parseDocument decodes one document into zero or more resources.
func parseDocument(doc yamlDoc) (rs []Resource, err error) {
	defer func() {
		if p := recover(); p != nil {
			rs, err = nil, fmt.Errorf("invalid YAML: %v", p)
		}
	}()
	generic, err := yaml.YAMLToJSONStrict(doc.text)
	if err != nil {
		// Report lines of the whole input, not of the document.
		msg := yamlLineRe().ReplaceAllStringFunc(err.Error(), func(m string) string {
			n, _ := strconv.Atoi(m[len("line "):])
			return "line " + strconv.Itoa(n+doc.line-1)
		})
		return nil, errors.New(msg)
	}
	generic = bytes.TrimSpace(generic)
	switch {
	case bytes.Equal(generic, []byte("null")):
		return nil, nil
	case len(generic) > 0 && generic[0] == '[':
		var items []json.RawMessage
		if err := json.Unmarshal(generic, &items); err != nil {
			return nil, err
		}
		return decodeItems(items, TypeMeta{})
	case len(generic) == 0 || generic[0] != '{':
		return nil, errors.New("a manifest must be a mapping with kind and apiVersion")
	}
	tm, err := peekTypeMeta(generic)
	if err != nil {
		return nil, err
	}
	if elem, ok := listElemKind(tm.Kind); ok {
		return decodeList(generic, tm, elem)
	}
	r, err := decodeManifestItem(generic)
	if err != nil {
		return nil, err
	}
	return []Resource{r}, nil
}

// listElemKind reports whether kind is "List" (elem "") or "<Kind>List".
func listElemKind(kind string) (string, bool) {
	if kind == "List" {
		return "", true
	}
	elem, ok := strings.CutSuffix(kind, "List")
	if !ok {
		return "", false
	}
	_, known := constructors[elem]
	return elem, known
}

func decodeList(generic []byte, tm TypeMeta, elem string) ([]Resource, error) {
	var list struct {
		TypeMeta `json:",inline"`
		Metadata json.RawMessage   `json:"metadata,omitempty"`
		Items    []json.RawMessage `json:"items"`
	}
	dec := json.NewDecoder(bytes.NewReader(generic))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&list); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", tm.Kind, err)
	}
	if tm.APIVersion != "" && tm.APIVersion != APIVersion && !(elem == "" && tm.APIVersion == "v1") {
		return nil, fmt.Errorf("unsupported apiVersion %q for kind %s (use %s)", tm.APIVersion, tm.Kind, APIVersion)
	}
	def := TypeMeta{}
	if elem != "" {
		def = TypeMeta{Kind: elem, APIVersion: APIVersion}
	}
	return decodeItems(list.Items, def)
}

// decodeItems decodes list items, filling a missing kind and apiVersion from def.
func decodeItems(items []json.RawMessage, def TypeMeta) ([]Resource, error) {
	out := make([]Resource, 0, len(items))
	for i, item := range items {
		if def.Kind != "" {
			var err error
			if item, err = fillTypeMeta(item, def); err != nil {
				return nil, fmt.Errorf("item %d: %w", i+1, err)
			}
		}
		r, err := decodeManifestItem(item)
		if err != nil {
			return nil, fmt.Errorf("item %d: %w", i+1, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// fillTypeMeta sets kind and apiVersion on an item object that lacks them.
func fillTypeMeta(item json.RawMessage, def TypeMeta) (json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(item, &m); err != nil || m == nil {
		return nil, errors.New("list items must be mappings")
	}
	changed := false
	for k, v := range map[string]string{"kind": def.Kind, "apiVersion": def.APIVersion} {
		if _, ok := m[k]; !ok {
			m[k], _ = json.Marshal(v)
			changed = true
		}
	}
	if !changed {
		return item, nil
	}
	return json.Marshal(m)
}

// decodeManifestItem decodes one resource object (JSON text, also valid
// YAML) strictly, coercing scalars to string fields as calicoctl does.
func decodeManifestItem(obj []byte) (Resource, error) {
	tm, err := peekTypeMeta(obj)
	if err != nil {
		return nil, err
	}
	if err := checkTypeMeta(tm); err != nil {
		return nil, err
	}
	r, _ := New(tm.Kind)
	// Fast path: strict JSON. Only when it fails is the slower YAML decoder
	// run, which coerces scalars (label: 1 -> "1") and words the error.
	dec := json.NewDecoder(bytes.NewReader(obj))
	dec.DisallowUnknownFields()
	if dec.Decode(r) == nil && !dec.More() {
		return r, nil
	}
	r, _ = New(tm.Kind)
	if err := yaml.UnmarshalStrict(obj, r); err != nil {
		msg := err.Error()
		for _, prefix := range []string{"error unmarshaling JSON: ", "while decoding JSON: "} {
			msg = strings.TrimPrefix(msg, prefix)
		}
		if path := valuePath(obj, r); path != "" {
			msg = path + ": " + msg
		}
		name := r.GetObjectMeta().Name
		return nil, fmt.Errorf("%s %q: %s", tm.Kind, name, msg)
	}
	return r, nil
}
