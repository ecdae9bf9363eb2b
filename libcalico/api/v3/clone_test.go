package v3

import (
	"reflect"
	"testing"
)

// TestCloneReachesEveryField: Clone copies unexported fields by
// assignment, so no resource type may hold a pointer, slice or map in one
// (time.Time's location is shared on purpose: it never changes).
func TestCloneReachesEveryField(t *testing.T) {
	seen := map[reflect.Type]bool{}
	var walk func(t0 reflect.Type, path string)
	walk = func(ty reflect.Type, path string) {
		if seen[ty] || ty.PkgPath() == "time" {
			return
		}
		seen[ty] = true
		switch ty.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Array:
			walk(ty.Elem(), path+"[]")
		case reflect.Map:
			walk(ty.Key(), path+"{key}")
			walk(ty.Elem(), path+"{}")
		case reflect.Interface, reflect.Chan, reflect.Func, reflect.UnsafePointer:
			t.Errorf("%s: %s cannot be cloned", path, ty)
		case reflect.Struct:
			for i := range ty.NumField() {
				f := ty.Field(i)
				if !f.IsExported() && !plain(f.Type) {
					t.Errorf("%s.%s: unexported field of type %s", path, f.Name, f.Type)
				}
				walk(f.Type, path+"."+f.Name)
			}
		}
	}
	for kind, mk := range constructors {
		walk(reflect.TypeOf(mk()), kind)
	}
	if len(seen) < 50 {
		t.Fatalf("walked only %d types", len(seen))
	}
}
