package v3

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
)

// polFromJSON decodes a manifest into r and applies defaults.
func polFromJSON(t *testing.T, r Resource, manifest string) {
	t.Helper()
	if err := json.Unmarshal([]byte(manifest), r); err != nil {
		t.Fatalf("decoding %s: %v", manifest, err)
	}
	r.Default()
}

func TestPolicyDefaults(t *testing.T) {
	for _, tc := range []struct {
		name, spec string
		types      []PolicyType
	}{
		{"no rules", `{}`, []PolicyType{PolicyTypeIngress}},
		{"ingress only", `{"ingress":[{"action":"Allow"}]}`, []PolicyType{PolicyTypeIngress}},
		{"egress only", `{"egress":[{"action":"Allow"}]}`, []PolicyType{PolicyTypeEgress}},
		{"both", `{"ingress":[{"action":"Allow"}],"egress":[{"action":"Deny"}]}`, []PolicyType{PolicyTypeIngress, PolicyTypeEgress}},
		{"explicit kept", `{"egress":[{"action":"Allow"}],"types":["Ingress"]}`, []PolicyType{PolicyTypeIngress}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			np := &NetworkPolicy{}
			polFromJSON(t, np, `{"metadata":{"name":"p"},"spec":`+tc.spec+`}`)
			if np.Namespace != "default" || np.Spec.Tier != "default" || np.Labels[LabelTier] != "default" {
				t.Errorf("got namespace %q tier %q labels %v", np.Namespace, np.Spec.Tier, np.Labels)
			}
			if !reflect.DeepEqual(np.Spec.Types, tc.types) {
				t.Errorf("NetworkPolicy types %v, want %v", np.Spec.Types, tc.types)
			}
			if np.Kind != KindNetworkPolicy || np.APIVersion != APIVersion {
				t.Errorf("type meta %+v", np.TypeMeta)
			}
			gnp := &GlobalNetworkPolicy{}
			polFromJSON(t, gnp, `{"metadata":{"name":"p"},"spec":`+tc.spec+`}`)
			if !reflect.DeepEqual(gnp.Spec.Types, tc.types) || gnp.Namespace != "" || gnp.Labels[LabelTier] != "default" {
				t.Errorf("GlobalNetworkPolicy %+v", gnp)
			}
		})
	}
	np := &NetworkPolicy{}
	polFromJSON(t, np, `{"metadata":{"name":"sec.p","namespace":"prod","labels":{"a":"b","projectcalico.org/tier":"wrong"}},"spec":{"tier":"sec"}}`)
	if np.Namespace != "prod" || np.Labels[LabelTier] != "sec" || np.Labels["a"] != "b" {
		t.Errorf("tier label not set from spec.tier: %+v", np.ObjectMeta)
	}
}

func TestTierDefaults(t *testing.T) {
	tier := &Tier{}
	polFromJSON(t, tier, `{"metadata":{"name":"t"}}`)
	if tier.Spec.Order == nil || *tier.Spec.Order != 1e6 || tier.Spec.DefaultAction == nil || *tier.Spec.DefaultAction != Deny {
		t.Fatalf("got %+v", tier.Spec)
	}
	polFromJSON(t, tier, `{"metadata":{"name":"t"},"spec":{"order":5,"defaultAction":"Pass"}}`)
	if *tier.Spec.Order != 5 || *tier.Spec.DefaultAction != Pass {
		t.Fatalf("defaults overrode set values: %+v", tier.Spec)
	}
	if b, _ := json.Marshal(tier); !strings.Contains(string(b), `"status":{}`) {
		t.Errorf("Calico writes an empty status; got %s", b)
	}
}

// polGNPErr builds a GlobalNetworkPolicy from its spec and returns Validate's error.
func polGNPErr(t *testing.T, name, spec string) error {
	t.Helper()
	p := &GlobalNetworkPolicy{}
	polFromJSON(t, p, `{"metadata":{"name":"`+name+`"},"spec":`+spec+`}`)
	return p.Validate()
}

func polNPErr(t *testing.T, name, spec string) error {
	t.Helper()
	p := &NetworkPolicy{}
	polFromJSON(t, p, `{"metadata":{"name":"`+name+`","namespace":"prod"},"spec":`+spec+`}`)
	return p.Validate()
}

const (
	polMsgPorts = "rules that specify ports must set protocol to TCP or UDP or SCTP"
	polMsgName  = "name must consist of lower case alphanumeric characters or '-'"
)

func TestNetworkPolicyValidation(t *testing.T) {
	const in = "NetworkPolicy.Spec.Ingress[0]"
	for _, tc := range []struct {
		name, spec, field, value, reason string
		policy                           string // default "p"
	}{
		{"valid", `{"order":50,"selector":"role == 'db'","ingress":[{"action":"Allow","protocol":"TCP","source":{"selector":"role == 'fe'"},"destination":{"ports":[6379,"8000:8080","redis"]}}],"egress":[{"action":"Allow"}]}`, "", "", "", ""},
		{"valid log and pass", `{"ingress":[{"action":"Log"},{"action":"Pass"},{"action":"Deny","protocol":58,"ipVersion":6,"icmp":{"type":128,"code":0}}]}`, "", "", "", ""},
		{"valid tier-prefixed name", `{"tier":"sec"}`, "", "", "", "sec.allow"},
		{"valid knp name", `{}`, "", "", "", "knp.default.a.b.c"},
		{"action", `{"ingress":[{"action":"Allw"}]}`, in + ".Action", "Allw", "must be one of Allow, Deny, Log, Pass", ""},
		{"no action", `{"ingress":[{}]}`, in + ".Action", "", "must be one of", ""},
		{"lower-case action", `{"ingress":[{"action":"allow"}]}`, in + ".Action", "allow", "", ""},
		{"protocol name", `{"ingress":[{"action":"Allow","protocol":"tcp"}]}`, in + ".Protocol", "tcp", "protocol name invalid", ""},
		{"protocol zero", `{"ingress":[{"action":"Allow","protocol":0}]}`, in + ".Protocol", "0", "protocol number invalid", ""},
		{"not protocol", `{"ingress":[{"action":"Allow","notProtocol":"GRE"}]}`, in + ".NotProtocol", "GRE", "protocol name invalid", ""},
		{"ports without protocol", `{"ingress":[{"action":"Allow","destination":{"ports":[80]}}]}`, in + ".Destination.Ports", "[80]", polMsgPorts, ""},
		{"notPorts without protocol", `{"ingress":[{"action":"Allow","source":{"notPorts":["22:23"]}}]}`, in + ".Source.NotPorts", "[22:23]", polMsgPorts, ""},
		{"ports with icmp", `{"ingress":[{"action":"Allow","protocol":"ICMP","destination":{"ports":[80]}}]}`, in + ".Destination.Ports", "[80]", polMsgPorts, ""},
		{"ports with protocol 7", `{"ingress":[{"action":"Allow","protocol":7,"source":{"ports":[1]}}]}`, in + ".Source.Ports", "[1]", polMsgPorts, ""},
		{"port zero", `{"ingress":[{"action":"Allow","protocol":"UDP","destination":{"ports":[0]}}]}`, in + ".Destination.Ports[0]", "0", "port range invalid, port number must be between 1 and 65535", ""},
		{"range from zero", `{"ingress":[{"action":"Allow","protocol":"SCTP","destination":{"notPorts":["0:10"]}}]}`, in + ".Destination.NotPorts[0]", "0", "port number must be between 1 and 65535", ""},
		{"named port", `{"ingress":[{"action":"Allow","protocol":"TCP","destination":{"ports":["Web_Port"]}}]}`, in + ".Destination.Ports[0]", "Web_Port", "invalid port name", ""},
		{"named port too long", `{"ingress":[{"action":"Allow","protocol":"TCP","destination":{"ports":["abcdefghijklmnop"]}}]}`, in + ".Destination.Ports[0]", "abcdefghijklmnop", "invalid port name", ""},
		{"icmp type", `{"ingress":[{"action":"Allow","protocol":"ICMP","icmp":{"type":255}}]}`, in + ".ICMP.Type", "255", "ICMP type must be between 0 and 254", ""},
		{"icmp negative type", `{"ingress":[{"action":"Allow","protocol":"ICMP","icmp":{"type":-1}}]}`, in + ".ICMP.Type", "-1", "", ""},
		{"icmp code", `{"ingress":[{"action":"Allow","protocol":"ICMP","icmp":{"type":3,"code":256}}]}`, in + ".ICMP.Code", "256", "ICMP code must be between 0 and 255", ""},
		{"icmp code without type", `{"ingress":[{"action":"Allow","protocol":"ICMP","notICMP":{"code":1}}]}`, in + ".NotICMP.Code", "1", "ICMP code specified without an ICMP type", ""},
		{"icmp with tcp", `{"ingress":[{"action":"Allow","protocol":"TCP","icmp":{"type":8}}]}`, in + ".ICMP", "{type:8}", "rules that specify ICMP fields must set protocol to ICMP", ""},
		{"icmp without protocol", `{"ingress":[{"action":"Allow","icmp":{"type":8}}]}`, in + ".ICMP", "{type:8}", "must set protocol to ICMP", ""},
		{"ip version", `{"ingress":[{"action":"Allow","ipVersion":5}]}`, in + ".IPVersion", "5", "ip version must be 4 or 6", ""},
		{"icmp ip version", `{"ingress":[{"action":"Allow","protocol":"ICMP","ipVersion":6}]}`, in + ".IPVersion", "6", "must set ipversion to '4' with protocol icmp", ""},
		{"icmpv6 ip version", `{"ingress":[{"action":"Allow","notProtocol":"ICMPv6","ipVersion":4}]}`, in + ".IPVersion", "4", "must set ipversion to '6' with protocol icmpv6", ""},
		{"bad net", `{"ingress":[{"action":"Allow","source":{"nets":["10.0.0.0/8","garbage"]}}]}`, in + ".Source.Nets[1]", "garbage", "invalid CIDR", ""},
		{"net out of range", `{"ingress":[{"action":"Allow","destination":{"notNets":["10.0.0.0/33"]}}]}`, in + ".Destination.NotNets[0]", "10.0.0.0/33", "invalid CIDR", ""},
		{"unmasked net", `{"ingress":[{"action":"Allow","source":{"nets":["10.0.0.1/8"]}}]}`, in + ".Source.Nets[0]", "10.0.0.1/8", "invalid CIDR", ""},
		{"mixed families", `{"ingress":[{"action":"Allow","source":{"nets":["10.0.0.0/8"]},"destination":{"nets":["fd00::/64"]}}]}`, in + ".Destination.Nets", "[fd00::/64]", "rule contains both IPv4 and IPv6 CIDRs", ""},
		{"family vs version", `{"ingress":[{"action":"Allow","ipVersion":6,"source":{"nets":["10.0.0.0/8"]}}]}`, in + ".Source.Nets", "[10.0.0.0/8]", "rule IP version doesn't match CIDR version", ""},
		{"selector", `{"ingress":[{"action":"Allow","source":{"selector":"role =="}}]}`, in + ".Source.Selector", "role ==", "invalid selector", ""},
		{"not selector", `{"ingress":[{"action":"Allow","destination":{"notSelector":"has("}}]}`, in + ".Destination.NotSelector", "has(", "invalid selector", ""},
		{"namespace selector", `{"ingress":[{"action":"Allow","source":{"namespaceSelector":"a in {"}}]}`, in + ".Source.NamespaceSelector", "a in {", "invalid selector", ""},
		{"global in entity selector", `{"ingress":[{"action":"Allow","source":{"selector":"global()"}}]}`, in + ".Source.Selector", "global()", "global() can only be used in an EntityRule namespaceSelector", ""},
		{"global combined", `{"ingress":[{"action":"Allow","source":{"namespaceSelector":"global() && has(a)"}}]}`, in + ".Source.NamespaceSelector", "global() && has(a)", "global() cannot be combined with other selectors", ""},
		{"sa selector", `{"ingress":[{"action":"Allow","source":{"serviceAccounts":{"selector":"!!"}}}]}`, in + ".Source.ServiceAccounts.Selector", "!!", "invalid selector", ""},
		{"policy selector", `{"selector":"a ==== b"}`, "NetworkPolicy.Spec.Selector", "a ==== b", "invalid selector", ""},
		{"policy global selector", `{"selector":"global()"}`, "NetworkPolicy.Spec.Selector", "global()", "global() can only be used", ""},
		{"sa policy selector", `{"serviceAccountSelector":"x in"}`, "NetworkPolicy.Spec.ServiceAccountSelector", "x in", "invalid selector", ""},
		{"type", `{"types":["Sideways"]}`, "NetworkPolicy.Spec.Types[0]", "Sideways", "must be one of Ingress, Egress", ""},
		{"duplicate type", `{"types":["Ingress","Ingress"]}`, "NetworkPolicy.Spec.Types", "[Ingress Ingress]", "'Ingress' type specified more than once", ""},
		{"hint", `{"performanceHints":["Fast"]}`, "NetworkPolicy.Spec.PerformanceHints[0]", "Fast", "must be one of AssumeNeededOnEveryNode", ""},
		{"tier name", `{"tier":"Bad_Tier"}`, "NetworkPolicy.Spec.Tier", "Bad_Tier", "", ""},
		{"http on deny", `{"ingress":[{"action":"Deny","http":{"methods":["GET"]}}]}`, in + ".HTTP", "{[GET] []}", "only valid for Allow rules", ""},
		{"http with udp", `{"ingress":[{"action":"Allow","protocol":"UDP","http":{"methods":["GET"]}}]}`, in + ".Protocol", "UDP", "rules that specify HTTP fields must set protocol to TCP or empty", ""},
		{"http duplicate method", `{"ingress":[{"action":"Allow","http":{"methods":["GET","GET"]}}]}`, in + ".HTTP.Methods", "[GET GET]", "Invalid methods (duplicates)", ""},
		{"http path", `{"ingress":[{"action":"Allow","http":{"paths":[{"exact":"/a","prefix":"/b"}]}}]}`, in + ".HTTP.Paths[0]", "{/a /b}", "Both 'exact' and 'prefix' are set", ""},
		{"http path query", `{"ingress":[{"action":"Allow","http":{"paths":[{"prefix":"/a?b"}]}}]}`, in + ".HTTP.Paths[0]", "/a?b", "must start with `/`", ""},
		{"http in egress", `{"egress":[{"action":"Allow","http":{"methods":["GET"]}}]}`, "NetworkPolicy.Spec.Egress[0].HTTP", "{[GET] []}", "not allowed in egress rule", ""},
		{"service in ingress destination", `{"ingress":[{"action":"Allow","destination":{"services":{"name":"web"}}}]}`, in + ".Destination.Services", "{web }", "not allowed in ingress rule destination", ""},
		{"service in egress source", `{"egress":[{"action":"Allow","source":{"services":{"name":"web"}}}]}`, "NetworkPolicy.Spec.Egress[0].Source.Services", "{web }", "not allowed in egress rule source", ""},
		{"service without name", `{"egress":[{"action":"Allow","destination":{"services":{"namespace":"x"}}}]}`, "NetworkPolicy.Spec.Egress[0].Destination.Services", "{ x}", "must specify a service name", ""},
		{"service with selector", `{"egress":[{"action":"Allow","destination":{"services":{"name":"w"},"selector":"has(a)"}}]}`, "NetworkPolicy.Spec.Egress[0].Destination.Services", "{w }", "cannot specify Selector/NotSelector and Services on the same rule", ""},
		{"service with ports", `{"egress":[{"action":"Allow","protocol":"TCP","destination":{"services":{"name":"w"},"ports":[80]}}]}`, "NetworkPolicy.Spec.Egress[0].Destination.Ports", "[80]", "cannot specify ports with a service selector", ""},
		{"rule annotation", `{"ingress":[{"action":"Allow","metadata":{"annotations":{"...":"x"}}}]}`, in + ".Metadata.Annotations", "...", "invalid annotation key", ""},
		{"name", `{}`, "Metadata.Name", "Bad_Name", polMsgName, "Bad_Name"},
		{"name two dots", `{}`, "Metadata.Name", "a.b.c", polMsgName, "a.b.c"},
		{"name too long", `{}`, "Metadata.Name", strings.Repeat("a", 254), "name is too long by 1 bytes", strings.Repeat("a", 254)},
		{"unicode name", `{}`, "Metadata.Name", "pölicy", polMsgName, "pölicy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := tc.policy
			if name == "" {
				name = "p"
			}
			err := polNPErr(t, name, tc.spec)
			if tc.field == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			polWantErr(t, err, tc.field, tc.value, tc.reason)
		})
	}
}

func TestGlobalNetworkPolicyValidation(t *testing.T) {
	const s = "GlobalNetworkPolicy.Spec"
	for _, tc := range []struct {
		name, spec, field, value, reason string
	}{
		{"valid", `{"order":100,"selector":"color == 'blue'","ingress":[{"action":"Deny","protocol":"ICMP","icmp":{"type":8},"source":{"nets":["192.168.0.0/16"]}}],"egress":[{"action":"Allow","protocol":"TCP","destination":{"selector":"color == 'green'","notPorts":["22:23"]}}]}`, "", "", ""},
		{"valid prednat", `{"preDNAT":true,"applyOnForward":true,"ingress":[{"action":"Deny"}]}`, "", "", ""},
		{"valid global ns", `{"ingress":[{"action":"Allow","source":{"namespaceSelector":"global()"}}]}`, "", "", ""},
		{"prednat and dnt", `{"preDNAT":true,"doNotTrack":true,"applyOnForward":true}`, s + ".PreDNAT", "true", "PreDNAT and DoNotTrack cannot both be true, for a given PolicySpec"},
		{"prednat egress", `{"preDNAT":true,"applyOnForward":true,"egress":[{"action":"Allow"}]}`, s + ".Egress", "<1 rules>", "PreDNAT PolicySpec cannot have any Egress rules"},
		{"prednat egress type", `{"preDNAT":true,"applyOnForward":true,"types":["Egress"]}`, s + ".Types", "[Egress]", "PreDNAT PolicySpec cannot have 'egress' Type"},
		{"dnt without aof", `{"doNotTrack":true}`, s + ".ApplyOnForward", "false", "ApplyOnForward must be true if either PreDNAT or DoNotTrack is true"},
		{"namespace selector", `{"namespaceSelector":"global()"}`, s + ".NamespaceSelector", "global()", "global() can only be used"},
		{"bad namespace selector", `{"namespaceSelector":"&&"}`, s + ".NamespaceSelector", "&&", "invalid selector"},
		{"service needs namespace", `{"egress":[{"action":"Allow","destination":{"services":{"name":"web"}}}]}`, s + ".Egress[0].Destination.Services.Namespace", "", "must specify a namespace"},
		{"http in egress", `{"egress":[{"action":"Allow","http":{"methods":["GET"]}}]}`, s + ".Egress[0].HTTP", "{[GET] []}", "not allowed in egress rules"},
		{"duplicate hint", `{"performanceHints":["AssumeNeededOnEveryNode","AssumeNeededOnEveryNode"]}`, s + ".PerformanceHints", "[AssumeNeededOnEveryNode AssumeNeededOnEveryNode]", "specified more than once"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := polGNPErr(t, "gnp", tc.spec)
			if tc.field == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			polWantErr(t, err, tc.field, tc.value, tc.reason)
		})
	}
	// GlobalNetworkPolicy names allow at most one dot and no knp prefix.
	polWantErr(t, polGNPErr(t, "knp.default.x", `{}`), "Metadata.Name", "knp.default.x", polMsgName)
	if err := polGNPErr(t, "sec.x", `{"tier":"sec"}`); err != nil {
		t.Errorf("sec.x: %v", err)
	}
	g := &GlobalNetworkPolicy{}
	polFromJSON(t, g, `{"metadata":{"name":"g","namespace":"x"}}`)
	polWantErr(t, g.Validate(), "Metadata.Namespace", "x", "GlobalNetworkPolicy is not namespaced")
	nan := math.NaN()
	g = NewGlobalNetworkPolicy()
	g.Name = "g"
	g.Spec.Order = &nan
	g.Default()
	polWantErr(t, g.Validate(), s+".Order", "NaN", "order must be a finite number")
	// Programmatic values that JSON cannot express are still checked.
	g.Spec.Order = nil
	g.Spec.Ingress = []Rule{{Action: Allow, Protocol: &Protocol{Type: NumOrStringString, StrVal: "TCP"},
		Destination: EntityRule{Ports: []Port{{MinPort: 200, MaxPort: 100}, {PortName: "x", MinPort: 1, MaxPort: 1}}}}}
	err := g.Validate()
	polWantErr(t, err, s+".Ingress[0].Destination.Ports[0]", "200:100", "port range invalid")
	polWantErr(t, err, s+".Ingress[0].Destination.Ports[1]", "x", "named port invalid, if name is specified, min and max should be 0")
}

func TestTierValidation(t *testing.T) {
	for _, tc := range []struct {
		name, manifest, field, value, reason string
	}{
		{"defaulted", `{"metadata":{"name":"sec"}}`, "", "", ""},
		{"default tier", `{"metadata":{"name":"default"}}`, "", "", ""},
		{"kube-admin", `{"metadata":{"name":"kube-admin"},"spec":{"order":1000,"defaultAction":"Pass"}}`, "", "", ""},
		{"kube-baseline", `{"metadata":{"name":"kube-baseline"},"spec":{"order":10000000,"defaultAction":"Pass"}}`, "", "", ""},
		{"action", `{"metadata":{"name":"sec"},"spec":{"defaultAction":"Allow"}}`, "Tier.Spec.DefaultAction", "Allow", "must be one of Deny, Pass"},
		{"default order", `{"metadata":{"name":"default"},"spec":{"order":5}}`, "Tier.Spec.Order", "5", "default tier order must be 1000000"},
		{"default action", `{"metadata":{"name":"default"},"spec":{"defaultAction":"Pass"}}`, "Tier.Spec.DefaultAction", "Pass", "The 'default' tier must have default action 'Deny'"},
		{"kube-admin order", `{"metadata":{"name":"kube-admin"},"spec":{"defaultAction":"Pass"}}`, "Tier.Spec.Order", "1e+06", "kube-admin tier order must be 1000"},
		{"kube-baseline action", `{"metadata":{"name":"kube-baseline"},"spec":{"order":10000000}}`, "Tier.Spec.DefaultAction", "Deny", "The 'kube-baseline' tier must have default action 'Pass'"},
		{"anp order", `{"metadata":{"name":"adminnetworkpolicy"},"spec":{"order":7,"defaultAction":"Pass"}}`, "Tier.Spec.Order", "7", "adminnetworkpolicy tier order must be 1000"},
		{"dotted name", `{"metadata":{"name":"a.b"}}`, "Metadata.Name", "a.b", polMsgName},
		{"long name", `{"metadata":{"name":"` + strings.Repeat("t", 64) + `"}}`, "Metadata.Name", strings.Repeat("t", 64), "name is too long by 1 bytes"},
		{"empty name", `{}`, "Metadata.Name", "", "name must be specified"},
		{"label", `{"metadata":{"name":"t","labels":{"a":"b c"}}}`, "Metadata.Labels[a]", "b c", "invalid label value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tier := &Tier{}
			polFromJSON(t, tier, tc.manifest)
			err := tier.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			polWantErr(t, err, tc.field, tc.value, tc.reason)
		})
	}
}

func TestProfileValidation(t *testing.T) {
	p := &Profile{}
	polFromJSON(t, p, `{"metadata":{"name":"prof1"},"spec":{"ingress":[{"action":"Allow","source":{"selector":"profile == 'prof1'"}}],"egress":[{"action":"Allow","http":{"methods":["GET"]}}],"labelsToApply":{"applied":"yes"}}}`)
	if err := p.Validate(); err != nil {
		t.Fatalf("valid profile: %v", err)
	}
	for _, tc := range []struct{ manifest, field, value, reason string }{
		{`{"metadata":{"name":"p"},"spec":{"labelsToApply":{"bad key!":"v"}}}`, "Profile.Spec.LabelsToApply", "bad key!", "invalid label key"},
		{`{"metadata":{"name":"p"},"spec":{"labelsToApply":{"k":"` + strings.Repeat("v", 64) + `"}}}`, "Profile.Spec.LabelsToApply[k]", strings.Repeat("v", 64), "invalid label value"},
		{`{"metadata":{"name":"p"},"spec":{"egress":[{"action":"Nope"}]}}`, "Profile.Spec.Egress[0].Action", "Nope", ""},
		{`{"metadata":{"name":"P"}}`, "Metadata.Name", "P", ""},
		{`{"metadata":{"name":"p","annotations":{"a/b/c":"x"}}}`, "Metadata.Annotations", "a/b/c", "invalid annotation key"},
	} {
		p := &Profile{}
		polFromJSON(t, p, tc.manifest)
		polWantErr(t, p.Validate(), tc.field, tc.value, tc.reason)
	}
}
