package testutil

import (
	"testing"

	"github.com/calico-etcd/calico/testutil/fixtures"
)

// FixturePath finds testdata/fixtures/<name> of the checkout (or in
// $CALICO_FIXTURES) and fails the test when it is absent.
func FixturePath(t testing.TB, name string) string {
	t.Helper()
	p, err := fixtures.Path(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Fixture reads testdata/fixtures/<name>, failing the test when absent.
func Fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := fixtures.Read(name)
	if err != nil {
		t.Fatalf("reading fixture: %v", err)
	}
	return b
}
