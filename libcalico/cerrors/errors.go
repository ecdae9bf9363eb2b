// Package cerrors holds the typed errors shared by every libcalico layer.
//
// Each error type matches one sentinel through errors.Is, so callers test
// errors.Is(err, cerrors.ErrNotFound) whatever the backend.
package cerrors

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinels for errors.Is.
var (
	ErrNotFound    = errors.New("resource does not exist")
	ErrExists      = errors.New("resource already exists")
	ErrConflict    = errors.New("update conflict")
	ErrValidation  = errors.New("validation failed")
	ErrUnavailable = errors.New("datastore unavailable")
	ErrCompacted   = errors.New("watch revision compacted")
)

// NotFound reports that the object at Key does not exist.
type NotFound struct{ Key string }

func (e *NotFound) Error() string      { return "resource does not exist: " + e.Key }
func (e *NotFound) Is(t error) bool    { return t == ErrNotFound }
func (e *Exists) Error() string        { return "resource already exists: " + e.Key }
func (e *Exists) Is(t error) bool      { return t == ErrExists }
func (e *Conflict) Is(t error) bool    { return t == ErrConflict }
func (e *Unavailable) Is(t error) bool { return t == ErrUnavailable }
func (e *Unavailable) Unwrap() error   { return e.Err }

// Exists reports that a create found the object already present.
type Exists struct{ Key string }

// Conflict reports a revision mismatch on update or delete.
type Conflict struct {
	Key      string
	Revision int64
}

func (e *Conflict) Error() string {
	if e.Revision == 0 {
		return "update conflict: " + e.Key
	}
	return fmt.Sprintf("update conflict: %s (resourceVersion %d is stale)", e.Key, e.Revision)
}

// Unavailable reports that the datastore could not be reached.
type Unavailable struct {
	Endpoints []string
	Err       error
}

func (e *Unavailable) Error() string {
	return fmt.Sprintf("datastore unavailable (etcd endpoints %s): %v", strings.Join(e.Endpoints, ","), e.Err)
}

// FieldError is one invalid field, in Calico's wording:
// error with field IPPool.Spec.CIDR = '10.300.0.0/16' (IPPool CIDR must be a valid subnet)
type FieldError struct {
	Field  string
	Value  any
	Reason string
}

func (e FieldError) Error() string {
	s := fmt.Sprintf("error with field %s = '%v'", e.Field, e.Value)
	if e.Reason != "" {
		s += " (" + e.Reason + ")"
	}
	return s
}

// Validation lists every invalid field of one resource.
type Validation struct {
	Fields []FieldError
}

func (e *Validation) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Error()
	}
	return strings.Join(parts, "; ")
}

func (e *Validation) Is(t error) bool { return t == ErrValidation }

// Add records one invalid field.
func (e *Validation) Add(field string, value any, reason string) {
	e.Fields = append(e.Fields, FieldError{Field: field, Value: value, Reason: reason})
}

// Err returns nil when no field was recorded, else e.
func (e *Validation) Err() error {
	if e == nil || len(e.Fields) == 0 {
		return nil
	}
	return e
}
