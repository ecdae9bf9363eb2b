package v3

import (
	"strings"
	"testing"
)

// Staged policies decode from Calico's manifests, take the policy
// defaults (tier, tier label, types) and validate as their enforced
// counterparts; a Delete carries nothing but its tier.
func TestStagedPolicies(t *testing.T) {
	rs, err := ParseManifests([]byte(`apiVersion: projectcalico.org/v3
kind: StagedNetworkPolicy
metadata: {name: web}
spec:
  selector: app == 'web'
  ingress: [{action: Allow, protocol: TCP, destination: {ports: [80]}}]
---
apiVersion: projectcalico.org/v3
kind: StagedGlobalNetworkPolicy
metadata: {name: gone}
spec: {stagedAction: Delete, tier: security}
---
apiVersion: projectcalico.org/v3
kind: StagedKubernetesNetworkPolicy
metadata: {name: k8s, namespace: prod}
spec:
  podSelector: {matchExpressions: [{key: app, operator: In, values: [web]}]}
  egress: [{to: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}}], ports: [{protocol: UDP, port: 53}, {port: dns}]}]
  policyTypes: [Egress]
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		r.Default()
		if err := r.Validate(); err != nil {
			t.Errorf("%s: %v", r.GetTypeMeta().Kind, err)
		}
	}
	snp := rs[0].(*StagedNetworkPolicy)
	if snp.Namespace != "default" || snp.Spec.Tier != "default" || snp.Labels[LabelTier] != "default" || len(snp.Spec.Types) != 1 {
		t.Errorf("defaults: %+v", snp)
	}
	if del := rs[1].(*StagedGlobalNetworkPolicy); len(del.Spec.Types) != 0 || del.Labels[LabelTier] != "security" {
		t.Errorf("a Delete must stay empty but for its tier: %+v", del)
	}

	bad := []struct {
		r    Resource
		want string
	}{
		{&StagedNetworkPolicy{ObjectMeta: ObjectMeta{Name: "x"}, Spec: StagedNetworkPolicySpec{StagedAction: "Maybe"}}, "StagedAction"},
		{&StagedGlobalNetworkPolicy{ObjectMeta: ObjectMeta{Name: "x"}, Spec: StagedGlobalNetworkPolicySpec{StagedAction: StagedActionDelete, Selector: "all()"}}, "should all be zero-value"},
		{&StagedNetworkPolicy{ObjectMeta: ObjectMeta{Name: "x"}, Spec: StagedNetworkPolicySpec{Selector: "app =="}}, "Selector"},
		{&StagedKubernetesNetworkPolicy{ObjectMeta: ObjectMeta{Name: "x"}, Spec: StagedKubernetesNetworkPolicySpec{
			PodSelector: K8sLabelSelector{MatchExpressions: []K8sLabelSelectorRequirement{{Key: "a", Operator: "Near"}}}}}, "operator"},
		{&StagedKubernetesNetworkPolicy{ObjectMeta: ObjectMeta{Name: "x"}, Spec: StagedKubernetesNetworkPolicySpec{
			Ingress: []K8sNetworkPolicyRule{{Ports: []K8sNetworkPolicyPort{{Port: []byte("70000")}}}}}}, "between 1 and 65535"},
	}
	for _, b := range bad {
		if err := b.r.Validate(); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%T %+v: err %v, want %q", b.r, b.r, err, b.want)
		}
	}
	for _, k := range []string{KindStagedNetworkPolicy, KindStagedGlobalNetworkPolicy, KindStagedKubernetesNetworkPolicy} {
		if _, ok := LookupKind(k); !ok {
			t.Errorf("kind %s not registered", k)
		}
	}
	if ki, _ := LookupKind(KindStagedKubernetesNetworkPolicy); ki.Plural != "stagedkubernetesnetworkpolicies" || !ki.Namespaced {
		t.Errorf("plural %+v", ki)
	}
}
