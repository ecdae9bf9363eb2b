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
	// ErrDatastoreReset: the datastore was replaced or rolled back (etcd
	// restored from a snapshot), so revisions read before it no longer
	// compare with revisions read after; a cache must list again.
	ErrDatastoreReset = errors.New("datastore reset")
	// ErrCorrupt matches *Corrupt and *Partial: a stored value that does
	// not decode.
	ErrCorrupt = errors.New("stored value does not decode")
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

// Corrupt reports a stored value that does not decode. Key is the etcd
// key, so that the message says what to repair.
type Corrupt struct {
	Key string
	Err error
}

func (e *Corrupt) Error() string   { return fmt.Sprintf("decoding %s: %v", e.Key, e.Err) }
func (e *Corrupt) Is(t error) bool { return t == ErrCorrupt }
func (e *Corrupt) Unwrap() error   { return e.Err }

// Partial reports a read that skipped the values it could not decode and
// returned the others alongside this error. Skipped is in key order.
type Partial struct {
	Skipped []*Corrupt
}

func (e *Partial) Error() string {
	parts := make([]string, len(e.Skipped))
	for i, c := range e.Skipped {
		parts[i] = c.Error()
	}
	return fmt.Sprintf("skipped %d stored value(s) that do not decode: %s", len(e.Skipped), strings.Join(parts, "; "))
}

func (e *Partial) Is(t error) bool { return t == ErrCorrupt }

// Skipped returns the values a partial read skipped and the rest of err:
// nil when err is nil or only a *Partial, so that a caller that accepts
// partial results writes
//
//	items, err := c.List(...)
//	skipped, err := cerrors.Skipped(err)
func Skipped(err error) ([]*Corrupt, error) {
	var p *Partial
	if err == nil || !errors.As(err, &p) || p != err {
		return nil, err
	}
	return p.Skipped, nil
}

// PartialOf returns a *Partial for skipped, or nil when it is empty.
func PartialOf(skipped []*Corrupt) error {
	if len(skipped) == 0 {
		return nil
	}
	return &Partial{Skipped: skipped}
}
