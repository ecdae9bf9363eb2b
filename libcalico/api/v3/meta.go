// Package v3 holds Calico's projectcalico.org/v3 resource types, their
// defaults and their validation. It does no I/O.
package v3

import (
	"bytes"
	"encoding/json"
	"time"
)

// Group and APIVersion of every resource in this package.
const (
	Group      = "projectcalico.org"
	APIVersion = Group + "/v3"
)

// TypeMeta names a resource's kind and API version.
type TypeMeta struct {
	Kind       string `json:"kind,omitempty"`
	APIVersion string `json:"apiVersion,omitempty"`
}

// GetTypeMeta returns the type metadata for in-place edits.
func (t *TypeMeta) GetTypeMeta() *TypeMeta { return t }

// Time is a timestamp written as RFC 3339 in UTC with second precision,
// as Kubernetes writes creationTimestamp.
type Time struct{ time.Time }

// Now returns the current time truncated to the second.
func Now() Time { return Time{time.Now().UTC().Truncate(time.Second)} }

// MarshalJSON writes RFC 3339, or null for the zero time.
func (t Time) MarshalJSON() ([]byte, error) {
	if t.IsZero() {
		return []byte("null"), nil
	}
	return json.Marshal(t.UTC().Format(time.RFC3339))
}

// UnmarshalJSON reads RFC 3339 or null.
func (t *Time) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		t.Time = time.Time{}
		return nil
	}
	var s string
	if n := len(b); n >= 2 && b[0] == '"' && b[n-1] == '"' && bytes.IndexByte(b, '\\') < 0 {
		s = string(b[1 : n-1]) // fast path: no escapes to undo
	} else if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	if s == "" {
		t.Time = time.Time{}
		return nil
	}
	pt, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return err
	}
	t.Time = pt.Local()
	return nil
}

// OwnerReference is Kubernetes' owner reference, kept so that resources
// written by other tools round-trip unchanged.
type OwnerReference struct {
	APIVersion         string `json:"apiVersion"`
	Kind               string `json:"kind"`
	Name               string `json:"name"`
	UID                string `json:"uid"`
	Controller         *bool  `json:"controller,omitempty"`
	BlockOwnerDeletion *bool  `json:"blockOwnerDeletion,omitempty"`
}

// ObjectMeta is the metadata every resource carries, with Kubernetes'
// field names.
type ObjectMeta struct {
	Name                       string            `json:"name,omitempty"`
	GenerateName               string            `json:"generateName,omitempty"`
	Namespace                  string            `json:"namespace,omitempty"`
	UID                        string            `json:"uid,omitempty"`
	ResourceVersion            string            `json:"resourceVersion,omitempty"`
	Generation                 int64             `json:"generation,omitempty"`
	CreationTimestamp          Time              `json:"creationTimestamp,omitzero"`
	DeletionTimestamp          *Time             `json:"deletionTimestamp,omitempty"`
	DeletionGracePeriodSeconds *int64            `json:"deletionGracePeriodSeconds,omitempty"`
	Labels                     map[string]string `json:"labels,omitempty"`
	Annotations                map[string]string `json:"annotations,omitempty"`
	OwnerReferences            []OwnerReference  `json:"ownerReferences,omitempty"`
	Finalizers                 []string          `json:"finalizers,omitempty"`
}

// GetObjectMeta returns the metadata for in-place edits.
func (m *ObjectMeta) GetObjectMeta() *ObjectMeta { return m }

// Resource is implemented by every kind in this package.
type Resource interface {
	// GetTypeMeta returns a pointer to the resource's kind and apiVersion.
	GetTypeMeta() *TypeMeta
	// GetObjectMeta returns a pointer to the resource's metadata.
	GetObjectMeta() *ObjectMeta
	// Default fills unset fields with Calico's defaults, in place. It is
	// idempotent and never fails; invalid values are left for Validate.
	Default()
	// Validate checks the resource on its own and returns a
	// *cerrors.Validation naming each bad field and value, or nil.
	Validate() error
}
