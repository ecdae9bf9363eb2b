package commands

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"

	"sigs.k8s.io/yaml"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/cerrors"
)

// config --raw: one field of the spec of BGPConfiguration or
// FelixConfiguration, by its JSON name.

// rawKind maps --raw to the kind it edits.
func rawKind(component string) (string, error) {
	switch strings.ToLower(component) {
	case "bgp":
		return v3.KindBGPConfiguration, nil
	case "felix":
		return v3.KindFelixConfiguration, nil
	}
	return "", failf(nil, "unrecognised component '%s': --raw must be bgp or felix", component)
}

// rawField finds the spec field of kind called name (any case) and
// returns its JSON name.
func rawField(kind, name string) (string, error) {
	r, err := v3.New(kind)
	if err != nil {
		return "", err
	}
	spec, ok := reflect.TypeOf(r).Elem().FieldByName("Spec")
	if ok {
		for _, f := range reflect.VisibleFields(spec.Type) {
			tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if tag != "" && tag != "-" && strings.EqualFold(tag, name) {
				return tag, nil
			}
		}
	}
	return "", failf(nil, "unknown %s field '%s': name a field of its spec, as 'calicoctl get %s -o yaml' writes it", kind, name, strings.ToLower(kind))
}

// rawSpec reads the resource --raw edits as a generic object: whole, and
// its spec. The resource is nil when it does not exist.
func (env *Env) rawSpec(ctx context.Context, kind, node string) (v3.Resource, map[string]json.RawMessage, map[string]json.RawMessage, error) {
	c, err := env.Client()
	if err != nil {
		return nil, nil, nil, err
	}
	r, err := c.Get(ctx, kind, "", configResourceName(node))
	if errors.Is(err, cerrors.ErrNotFound) {
		return nil, map[string]json.RawMessage{}, map[string]json.RawMessage{}, nil
	}
	if err != nil {
		return nil, nil, nil, err
	}
	data, err := json.Marshal(r)
	if err != nil {
		return nil, nil, nil, err
	}
	var obj, spec map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil {
		return nil, nil, nil, err
	}
	if s, ok := obj["spec"]; ok {
		if err := json.Unmarshal(s, &spec); err != nil {
			return nil, nil, nil, err
		}
	}
	if spec == nil {
		spec = map[string]json.RawMessage{}
	}
	return r, obj, spec, nil
}

func (env *Env) rawGet(ctx context.Context, component, name, node string) (string, error) {
	kind, err := rawKind(component)
	if err != nil {
		return "", err
	}
	field, err := rawField(kind, name)
	if err != nil {
		return "", err
	}
	_, _, spec, err := env.rawSpec(ctx, kind, node)
	if err != nil {
		return "", err
	}
	v, ok := spec[field]
	if !ok {
		return "(unset)", nil
	}
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s, nil
	}
	return string(v), nil
}

// rawSet sets the field to value, read as YAML, or removes it when value
// is nil, and writes the resource if it validates.
func (env *Env) rawSet(ctx context.Context, component, name string, value *string, node string) error {
	kind, err := rawKind(component)
	if err != nil {
		return err
	}
	field, err := rawField(kind, name)
	if err != nil {
		return err
	}
	cur, obj, spec, err := env.rawSpec(ctx, kind, node)
	if err != nil {
		return err
	}
	if value == nil {
		if _, ok := spec[field]; !ok {
			return nil
		}
		delete(spec, field)
		r, err := rawDecode(obj, spec)
		if err != nil {
			return err
		}
		return env.rawWrite(ctx, cur, r)
	}
	if cur == nil {
		obj["kind"], _ = json.Marshal(kind)
		obj["apiVersion"], _ = json.Marshal(v3.APIVersion)
		obj["metadata"], _ = json.Marshal(map[string]string{"name": configResourceName(node)})
	}
	// The value as YAML (10, true, [a, b]), else as a plain string.
	var candidates []json.RawMessage
	if j, err := yaml.YAMLToJSON([]byte(*value)); err == nil && len(j) > 0 && string(j) != "null" {
		candidates = append(candidates, j)
	}
	quoted, _ := json.Marshal(*value)
	candidates = append(candidates, quoted)
	var r v3.Resource
	var firstErr error
	for _, cand := range candidates {
		spec[field] = cand
		if r, err = rawDecode(obj, spec); err == nil {
			break
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	if err != nil {
		return failf(firstErr, "error with field %s.Spec.%s = '%s' (%v)", kind, field, *value, firstErr)
	}
	return env.rawWrite(ctx, cur, r)
}

// rawDecode rebuilds the resource from obj with spec, strictly.
func rawDecode(obj, spec map[string]json.RawMessage) (v3.Resource, error) {
	s, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	obj["spec"] = s
	data, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	return v3.DecodeJSON(data)
}

// rawWrite validates r and creates it, or updates cur with it.
func (env *Env) rawWrite(ctx context.Context, cur, r v3.Resource) error {
	c, err := env.Client()
	if err != nil {
		return err
	}
	if cur == nil {
		_, err = c.Create(ctx, r)
	} else {
		_, err = c.Update(ctx, r)
	}
	return err
}
