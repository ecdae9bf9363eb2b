// Package kinds is calicoctl's table of resource kinds: the names and
// aliases an operator may type (as Calico's calicoctl accepts them), and the
// columns of the ps and wide table output of each kind.
package kinds

import (
	"slices"
	"sort"
	"strings"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
)

// Info describes one kind for the CLI.
type Info struct {
	v3.KindInfo
	// Aliases are the lower-case names accepted on the command line.
	Aliases []string
	// Headings and WideHeadings are the -o ps and -o wide columns.
	Headings, WideHeadings []string
	// Columns maps every heading this kind knows (for custom-columns too)
	// to a text/template snippet evaluated on one resource.
	Columns map[string]string
	// ReadOnly kinds are managed by the daemons: calicoctl only reads them.
	ReadOnly bool
}

const (
	colName      = "{{.ObjectMeta.Name}}"
	colNamespace = "{{.ObjectMeta.Namespace}}"
)

var infos = []Info{
	{
		KindInfo: kind(v3.KindIPPool),
		Aliases:  []string{"ippool", "ippools", "ipp", "ipps", "pool", "pools"},
		Headings: []string{"NAME", "CIDR", "SELECTOR"},
		WideHeadings: []string{"NAME", "CIDR", "NAT", "IPIPMODE", "VXLANMODE", "DISABLED",
			"DISABLEBGPEXPORT", "SELECTOR"},
		Columns: map[string]string{
			"NAME":             colName,
			"CIDR":             "{{.Spec.CIDR}}",
			"NAT":              "{{.Spec.NATOutgoing}}",
			"IPIPMODE":         "{{if .Spec.IPIPMode}}{{.Spec.IPIPMode}}{{else}}Never{{end}}",
			"VXLANMODE":        "{{if .Spec.VXLANMode}}{{.Spec.VXLANMode}}{{else}}Never{{end}}",
			"DISABLED":         "{{.Spec.Disabled}}",
			"DISABLEBGPEXPORT": "{{.Spec.DisableBGPExport}}",
			"SELECTOR":         "{{.Spec.NodeSelector}}",
		},
	},
	{
		KindInfo:     kind(v3.KindIPReservation),
		Aliases:      []string{"ipreservation", "ipreservations", "reservation", "reservations"},
		Headings:     []string{"NAME"},
		WideHeadings: []string{"NAME", "CIDRS"},
		Columns: map[string]string{
			"NAME":  colName,
			"CIDRS": `{{joinAndTruncate .Spec.ReservedCIDRs "," 80}}`,
		},
	},
	{
		KindInfo:     kind(v3.KindNetworkPolicy),
		Aliases:      []string{"networkpolicy", "networkpolicies", "policy", "np", "policies", "pol", "pols"},
		Headings:     []string{"NAME", "TIER"},
		WideHeadings: []string{"NAME", "TIER", "ORDER", "SELECTOR"},
		Columns: map[string]string{
			"NAME":      colName,
			"NAMESPACE": colNamespace,
			"ORDER":     "{{.Spec.Order}}",
			"SELECTOR":  "{{.Spec.Selector}}",
			"TIER":      "{{.Spec.Tier}}",
		},
	},
	{
		KindInfo:     kind(v3.KindGlobalNetworkPolicy),
		Aliases:      []string{"globalnetworkpolicy", "globalnetworkpolicies", "gnp", "gnps"},
		Headings:     []string{"NAME"},
		WideHeadings: []string{"NAME", "ORDER", "SELECTOR"},
		Columns: map[string]string{
			"NAME":     colName,
			"ORDER":    "{{.Spec.Order}}",
			"SELECTOR": "{{.Spec.Selector}}",
			"TIER":     "{{.Spec.Tier}}",
		},
	},
	{
		KindInfo:     kind(v3.KindTier),
		Aliases:      []string{"tier", "tiers"},
		Headings:     []string{"NAME", "ORDER"},
		WideHeadings: []string{"NAME", "ORDER"},
		Columns: map[string]string{
			"NAME":  colName,
			"ORDER": "{{.Spec.Order}}",
		},
	},
	{
		KindInfo:     kind(v3.KindProfile),
		Aliases:      []string{"profile", "profiles", "pro", "pros"},
		Headings:     []string{"NAME"},
		WideHeadings: []string{"NAME", "LABELS"},
		Columns: map[string]string{
			"NAME":   colName,
			"LABELS": `{{join .Spec.LabelsToApply ","}}`,
		},
	},
	{
		KindInfo:     kind(v3.KindNetworkSet),
		Aliases:      []string{"networkset", "networksets", "netsets", "netset"},
		Headings:     []string{"NAME"},
		WideHeadings: []string{"NAME", "NETS"},
		Columns: map[string]string{
			"NAME":      colName,
			"NAMESPACE": colNamespace,
			"NETS":      `{{joinAndTruncate .Spec.Nets "," 80}}`,
		},
	},
	{
		KindInfo:     kind(v3.KindGlobalNetworkSet),
		Aliases:      []string{"globalnetworkset", "globalnetworksets", "gnetsets", "gnetset"},
		Headings:     []string{"NAME"},
		WideHeadings: []string{"NAME", "NETS"},
		Columns: map[string]string{
			"NAME": colName,
			"NETS": `{{joinAndTruncate .Spec.Nets "," 80}}`,
		},
	},
	{
		KindInfo:     kind(v3.KindWorkloadEndpoint),
		Aliases:      []string{"workloadendpoint", "workloadendpoints", "wep", "weps"},
		Headings:     []string{"WORKLOAD", "NODE", "NETWORKS", "INTERFACE"},
		WideHeadings: []string{"NAME", "WORKLOAD", "NODE", "NETWORKS", "INTERFACE", "PROFILES", "NATS"},
		Columns: map[string]string{
			"NAME":         colName,
			"NAMESPACE":    colNamespace,
			"NODE":         "{{.Spec.Node}}",
			"ORCHESTRATOR": "{{.Spec.Orchestrator}}",
			"WORKLOAD":     "{{if .Spec.Workload}}{{.Spec.Workload}}{{else}}{{.Spec.Pod}}{{end}}",
			"NETWORKS":     `{{join .Spec.IPNetworks ","}}`,
			"NATS":         `{{join .Spec.IPNATs ","}}`,
			"PROFILES":     `{{join .Spec.Profiles ","}}`,
			"INTERFACE":    "{{.Spec.InterfaceName}}",
		},
	},
	{
		KindInfo:     kind(v3.KindHostEndpoint),
		Aliases:      []string{"hostendpoint", "hostendpoints", "hep", "heps"},
		Headings:     []string{"NAME", "NODE"},
		WideHeadings: []string{"NAME", "NODE", "INTERFACE", "IPS", "PROFILES"},
		Columns: map[string]string{
			"NAME":      colName,
			"NODE":      "{{.Spec.Node}}",
			"INTERFACE": "{{.Spec.InterfaceName}}",
			"IPS":       `{{join .Spec.ExpectedIPs ","}}`,
			"PROFILES":  `{{join .Spec.Profiles ","}}`,
		},
	},
	{
		KindInfo:     kind(v3.KindNode),
		Aliases:      []string{"node", "nodes", "no", "nos"},
		Headings:     []string{"NAME"},
		WideHeadings: []string{"NAME", "ASN", "IPV4", "IPV6"},
		Columns: map[string]string{
			"NAME": colName,
			"ASN":  `{{if .Spec.BGP}}{{if .Spec.BGP.ASNumber}}{{.Spec.BGP.ASNumber}}{{else}}({{config "asnumber"}}){{end}}{{end}}`,
			"IPV4": "{{if .Spec.BGP}}{{if .Spec.BGP.IPv4Address}}{{.Spec.BGP.IPv4Address}}{{end}}{{end}}",
			"IPV6": "{{if .Spec.BGP}}{{if .Spec.BGP.IPv6Address}}{{.Spec.BGP.IPv6Address}}{{end}}{{end}}",
		},
	},
	{
		KindInfo:     kind(v3.KindBGPPeer),
		Aliases:      []string{"bgppeer", "bgppeers", "bgpp", "bgpps", "bp", "bps"},
		Headings:     []string{"NAME", "PEERIP", "NODE", "ASN"},
		WideHeadings: []string{"NAME", "PEERIP", "NODE", "ASN"},
		Columns: map[string]string{
			"NAME":   colName,
			"PEERIP": "{{.Spec.PeerIP}}",
			"NODE":   "{{ if eq .Spec.Node `` }}{{ if eq .Spec.NodeSelector `` }}(global){{ else }}{{.Spec.NodeSelector}}{{ end }}{{ else }}{{.Spec.Node}}{{ end }}",
			"ASN":    "{{.Spec.ASNumber}}",
		},
	},
	{
		KindInfo:     kind(v3.KindBGPConfiguration),
		Aliases:      []string{"bgpconfiguration", "bgpconfigurations", "bgpconfig", "bgpconfigs"},
		Headings:     []string{"NAME", "LOGSEVERITY", "MESHENABLED", "ASNUMBER"},
		WideHeadings: []string{"NAME", "LOGSEVERITY", "MESHENABLED", "ASNUMBER"},
		Columns: map[string]string{
			"NAME":        colName,
			"LOGSEVERITY": "{{.Spec.LogSeverityScreen}}",
			"MESHENABLED": "{{if .Spec.NodeToNodeMeshEnabled}}{{.Spec.NodeToNodeMeshEnabled}}{{ else }}-{{ end }}",
			"ASNUMBER":    "{{if .Spec.ASNumber}}{{.Spec.ASNumber}}{{ else }}-{{ end }}",
		},
	},
	{
		KindInfo:     kind(v3.KindBGPFilter),
		Aliases:      []string{"bgpfilter", "bgpfilters", "bgpf", "bgpfs", "bf", "bfs"},
		Headings:     []string{"NAME", "NUMEXPORT", "NUMIMPORT"},
		WideHeadings: []string{"NAME", "NUMEXPORT", "NUMIMPORT"},
		Columns: map[string]string{
			"NAME":      colName,
			"NUMEXPORT": "{{add (len .Spec.ExportV4) (len .Spec.ExportV6)}}",
			"NUMIMPORT": "{{add (len .Spec.ImportV4) (len .Spec.ImportV6)}}",
		},
	},
	{
		KindInfo:     kind(v3.KindFelixConfiguration),
		Aliases:      []string{"felixconfiguration", "felixconfigurations", "felixconfig", "felixconfigs"},
		Headings:     []string{"NAME"},
		WideHeadings: []string{"NAME"},
		Columns:      map[string]string{"NAME": colName},
	},
	{
		KindInfo:     kind(v3.KindClusterInformation),
		Aliases:      []string{"clusterinformation", "clusterinformations", "clusterinfo", "clusterinfos"},
		Headings:     []string{"NAME", "CLUSTERGUID", "CLUSTERTYPE", "CALICOVERSION", "DATASTOREREADY"},
		WideHeadings: []string{"NAME", "CLUSTERGUID", "CLUSTERTYPE", "CALICOVERSION", "DATASTOREREADY"},
		Columns: map[string]string{
			"NAME":           colName,
			"CLUSTERGUID":    "{{.Spec.ClusterGUID}}",
			"CLUSTERTYPE":    "{{.Spec.ClusterType}}",
			"CALICOVERSION":  "{{.Spec.CalicoVersion}}",
			"DATASTOREREADY": "{{.Spec.DatastoreReady}}",
		},
		ReadOnly: true,
	},
	{
		KindInfo:     kind(v3.KindStagedNetworkPolicy),
		Aliases:      []string{"stagednetworkpolicy", "stagednetworkpolicies", "stagedpolicy", "snp", "stagedpolicies", "spol", "spols"},
		Headings:     []string{"NAME", "TIER"},
		WideHeadings: []string{"NAME", "TIER", "ORDER", "SELECTOR"},
		Columns: map[string]string{
			"NAME":      colName,
			"NAMESPACE": colNamespace,
			"ORDER":     "{{.Spec.Order}}",
			"SELECTOR":  "{{.Spec.Selector}}",
			"TIER":      "{{.Spec.Tier}}",
		},
	},
	{
		KindInfo:     kind(v3.KindStagedGlobalNetworkPolicy),
		Aliases:      []string{"stagedglobalnetworkpolicy", "stagedglobalnetworkpolicies", "sgnp", "sgnps"},
		Headings:     []string{"NAME", "TIER"},
		WideHeadings: []string{"NAME", "TIER", "ORDER", "SELECTOR"},
		Columns: map[string]string{
			"NAME":     colName,
			"ORDER":    "{{.Spec.Order}}",
			"SELECTOR": "{{.Spec.Selector}}",
			"TIER":     "{{.Spec.Tier}}",
		},
	},
	{
		KindInfo: kind(v3.KindStagedKubernetesNetworkPolicy),
		Aliases: []string{"stagedkubernetesnetworkpolicy", "stagedkubernetesnetworkpolicies", "stagedkubernetespolicy", "sknp",
			"stagedkubernetespolicies", "skpol", "skpols"},
		Headings:     []string{"NAME"},
		WideHeadings: []string{"NAME", "PODSELECTOR"},
		Columns: map[string]string{
			"NAME":        colName,
			"NAMESPACE":   colNamespace,
			"PODSELECTOR": "{{.Spec.PodSelector}}",
		},
	},
}

func kind(k string) v3.KindInfo {
	ki, ok := v3.LookupKind(k)
	if !ok {
		panic("kinds: libcalico does not know kind " + k)
	}
	return ki
}

var byAlias, byKind = func() (map[string]*Info, map[string]*Info) {
	a, k := map[string]*Info{}, map[string]*Info{}
	for i := range infos {
		in := &infos[i]
		k[in.Kind] = in
		a[strings.ToLower(in.Kind)] = in
		for _, al := range in.Aliases {
			a[al] = in
		}
	}
	return a, k
}()

// Lookup finds a kind by any name an operator may type: the kind itself,
// its plural or an alias, in any case.
func Lookup(name string) (Info, bool) {
	in, ok := byAlias[strings.ToLower(name)]
	if !ok {
		return Info{}, false
	}
	return *in, true
}

// ByKind finds a kind by its exact name ("IPPool").
func ByKind(kind string) (Info, bool) {
	in, ok := byKind[kind]
	if !ok {
		return Info{}, false
	}
	return *in, true
}

// All returns every kind, in a stable order.
func All() []Info { return slices.Clone(infos) }

// HeadingNames returns the headings a kind knows, sorted.
func (in Info) HeadingNames() []string {
	out := make([]string, 0, len(in.Columns))
	for h := range in.Columns {
		out = append(out, h)
	}
	sort.Strings(out)
	return out
}

// ResourceList is the help text listing the kinds, one per line.
func ResourceList() string {
	var b strings.Builder
	for _, in := range infos {
		b.WriteString("    * ")
		b.WriteString(lowerCamel(in.Kind))
		b.WriteString("\n")
	}
	return b.String()
}

// lowerCamel lower-cases a kind's leading capitals as Calico's docs write
// kinds: IPPool → ipPool, BGPPeer → bgpPeer, HostEndpoint → hostEndpoint.
func lowerCamel(k string) string {
	n := 0
	for n < len(k) && k[n] >= 'A' && k[n] <= 'Z' {
		n++
	}
	if n > 1 && n < len(k) {
		n-- // keep the capital that starts the next word
	}
	return strings.ToLower(k[:n]) + k[n:]
}
