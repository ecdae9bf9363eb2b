package v3

import "strings"

// Kind names, as written in manifests.
const (
	KindIPPool              = "IPPool"
	KindIPReservation       = "IPReservation"
	KindNetworkPolicy       = "NetworkPolicy"
	KindGlobalNetworkPolicy = "GlobalNetworkPolicy"
	KindTier                = "Tier"
	KindProfile             = "Profile"
	KindNetworkSet          = "NetworkSet"
	KindGlobalNetworkSet    = "GlobalNetworkSet"
	KindWorkloadEndpoint    = "WorkloadEndpoint"
	KindHostEndpoint        = "HostEndpoint"
	KindNode                = "Node"
	KindBGPPeer             = "BGPPeer"
	KindBGPConfiguration    = "BGPConfiguration"
	KindBGPFilter           = "BGPFilter"
	KindFelixConfiguration  = "FelixConfiguration"
	KindClusterInformation  = "ClusterInformation"

	KindStagedNetworkPolicy           = "StagedNetworkPolicy"
	KindStagedGlobalNetworkPolicy     = "StagedGlobalNetworkPolicy"
	KindStagedKubernetesNetworkPolicy = "StagedKubernetesNetworkPolicy"
)

// KindInfo describes how a kind is stored.
type KindInfo struct {
	Kind       string
	Plural     string // lower-case plural used in etcd keys
	Namespaced bool
}

var kindInfos = []KindInfo{
	{KindIPPool, "ippools", false},
	{KindIPReservation, "ipreservations", false},
	{KindNetworkPolicy, "networkpolicies", true},
	{KindGlobalNetworkPolicy, "globalnetworkpolicies", false},
	{KindTier, "tiers", false},
	{KindProfile, "profiles", false},
	{KindNetworkSet, "networksets", true},
	{KindGlobalNetworkSet, "globalnetworksets", false},
	{KindWorkloadEndpoint, "workloadendpoints", true},
	{KindHostEndpoint, "hostendpoints", false},
	{KindNode, "nodes", false},
	{KindBGPPeer, "bgppeers", false},
	{KindBGPConfiguration, "bgpconfigurations", false},
	{KindBGPFilter, "bgpfilters", false},
	{KindFelixConfiguration, "felixconfigurations", false},
	{KindClusterInformation, "clusterinformations", false},
	{KindStagedNetworkPolicy, "stagednetworkpolicies", true},
	{KindStagedGlobalNetworkPolicy, "stagedglobalnetworkpolicies", false},
	{KindStagedKubernetesNetworkPolicy, "stagedkubernetesnetworkpolicies", true},
}

// Kinds returns every kind this package defines, in a stable order.
func Kinds() []KindInfo { return append([]KindInfo(nil), kindInfos...) }

// LookupKind finds a kind by its exact name ("IPPool").
func LookupKind(kind string) (KindInfo, bool) {
	for _, k := range kindInfos {
		if k.Kind == kind {
			return k, true
		}
	}
	return KindInfo{}, false
}

// LookupPlural finds a kind by its plural ("ippools").
func LookupPlural(plural string) (KindInfo, bool) {
	plural = strings.ToLower(plural)
	for _, k := range kindInfos {
		if k.Plural == plural {
			return k, true
		}
	}
	return KindInfo{}, false
}
