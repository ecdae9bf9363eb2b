package kubeconv_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/calico-etcd/calico/libcalico/kubeconv"
	networkingv1 "k8s.io/api/networking/v1"
)

// FuzzNetworkPolicy converts Kubernetes policies decoded from JSON and
// checks that NetworkPolicy never panics, that it returns a policy exactly
// when the error is nil or a *ConversionError, and that every policy it
// returns validates, before and after Default.
func FuzzNetworkPolicy(f *testing.F) {
	for _, cases := range [][]policyCase{calicoPolicyCases, calicoLegacyPolicyCases, ourPolicyCases} {
		for _, c := range cases {
			b, err := json.Marshal(c.input())
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Add([]byte(`{"metadata":{"name":"a","namespace":"b"},"spec":{"ingress":[{"ports":[{"port":"0:65535"}]}]}}`))
	f.Add([]byte(`{"metadata":{"name":"a","namespace":"b"},"spec":{"egress":[{"to":[{"ipBlock":{"cidr":"::ffff:1.2.3.0/120","except":["1.2.3.4/32"]}}]}]}}`))
	f.Add([]byte(`{"metadata":{"name":"a"},"spec":{"podSelector":{"matchExpressions":[{"key":"k","operator":"In"}]},"ingress":[{"from":[{}]}]}}`))

	f.Fuzz(func(t *testing.T, data []byte) {
		var np networkingv1.NetworkPolicy
		if err := json.Unmarshal(data, &np); err != nil {
			return
		}
		pol, err := kubeconv.NetworkPolicy(&np)
		var cerr *kubeconv.ConversionError
		partial := errors.As(err, &cerr)
		switch {
		case err == nil && pol == nil:
			t.Fatal("no policy and no error")
		case partial && (pol == nil || len(cerr.Rules) == 0):
			t.Fatalf("ConversionError with policy %v and %d rules", pol != nil, len(cerr.Rules))
		case err != nil && !partial && pol != nil:
			t.Fatalf("policy returned with error %v", err)
		}
		if pol == nil {
			return
		}
		if err := pol.Validate(); err != nil {
			t.Fatalf("converted policy fails Validate: %v\ninput %s", err, data)
		}
		pol.Default()
		if err := pol.Validate(); err != nil {
			t.Fatalf("converted policy fails Validate after Default: %v\ninput %s", err, data)
		}
	})
}
