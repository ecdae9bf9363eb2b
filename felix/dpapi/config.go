package dpapi

import (
	"net/netip"
	"regexp"
	"time"

	"github.com/sirupsen/logrus"
)

// ProtoPort is a failsafe port.
type ProtoPort struct {
	Protocol string // "tcp", "udp" or "sctp"
	Port     uint16
	Net      string // optional CIDR the rule is limited to
}

// Config is what the Linux dataplane needs from felix's configuration.
// Felix's config package fills it; zero values take the defaults noted.
type Config struct {
	Hostname string
	// InterfacePrefixes of workload interfaces; default ["cali"].
	InterfacePrefixes []string
	// DefaultEndpointToHostAction: "Drop" (default), "Return" or "Accept".
	DefaultEndpointToHostAction string
	FailsafeInbound             []ProtoPort
	FailsafeOutbound            []ProtoPort
	// IptablesBackend: "auto" (default), "legacy" or "nft".
	IptablesBackend string
	// IptablesMarkMask holds the bits felix may use; default 0xffff0000
	// (accept 0x10000, pass 0x20000, ...).
	IptablesMarkMask uint32
	// Refresh intervals: full resyncs that repair changes made behind
	// felix's back. Defaults 90s, 90s, 10s.
	IptablesRefreshInterval time.Duration
	RouteRefreshInterval    time.Duration
	IPSetsRefreshInterval   time.Duration
	IPv6Support             bool
	// LogPrefix for Log rules; default "calico-packet".
	LogPrefix string
	// LogRateLimit ("10/second") and LogRateLimitBurst limit Log rules;
	// "" = no limit.
	LogRateLimit      string
	LogRateLimitBurst int
	// Encapsulation devices.
	VXLANVNI   int // default 4096
	VXLANPort  int // default 4789
	VXLANMTU   int // 0 = derive from the host
	VXLANMTUV6 int // 0 = derive from the host
	IPIPMTU    int // 0 = derive from the host
	// MTUIfacePattern selects the host interfaces whose smallest MTU is
	// the host MTU; "" = Calico's default pattern.
	MTUIfacePattern string
	// MTUFile receives the pod MTU (the smallest MTU of the
	// encapsulations the pools use, else the host MTU) for the CNI
	// plugin; "" = not written.
	MTUFile string
	// NATOutgoingAddress, when valid, SNATs to this address instead of MASQUERADE.
	NATOutgoingAddress string
	// RouteProtocol for workload routes; default 3 (boot), as Calico.
	RouteProtocol int

	// ChainInsertMode: "insert" (default) puts felix's jumps at the top of
	// the kernel's chains, "append" at the bottom.
	ChainInsertMode string
	// FilterAllowAction and MangleAllowAction: "ACCEPT" (default) or
	// "RETURN" for packets felix's filter / mangle chains allow.
	FilterAllowAction string
	MangleAllowAction string
	// FilterDenyAction: "DROP" (default) or "REJECT" for packets policy denies.
	FilterDenyAction string
	// DisableConntrackInvalidCheck keeps conntrack-INVALID packets in
	// endpoint chains instead of dropping them.
	DisableConntrackInvalidCheck bool
	// AllowVXLANPacketsFromWorkloads / AllowIPIPPacketsFromWorkloads keep
	// encapsulated packets workloads send instead of dropping them.
	AllowVXLANPacketsFromWorkloads bool
	AllowIPIPPacketsFromWorkloads  bool
	// WorkloadSourceSpoofing honours workloads' AllowSpoofedSourcePrefixes.
	WorkloadSourceSpoofing bool
	// FloatingIPs programs workloads' NATs; off by default, as Calico.
	FloatingIPs bool
	// ServiceLoopPrevention: "Drop" (default), "Reject" or "Disabled" for
	// traffic to advertised service ranges (State.ServiceCIDRs).
	ServiceLoopPrevention string
	// NATOutgoingExclusions: "IPPoolsOnly" (default) or "IPPoolsAndHostIPs".
	NATOutgoingExclusions string
	// NATPortMin/NATPortMax: the source port range of NAT outgoing TCP
	// and UDP; 0 = the kernel's choice.
	NATPortMin, NATPortMax uint16
	// NATOutgoingInterfaceFilter limits NAT outgoing to one output
	// interface (iptables syntax, a trailing + is a wildcard).
	NATOutgoingInterfaceFilter string
	// ExternalNodes are non-Calico hosts allowed to send IPIP/VXLAN.
	ExternalNodes []netip.Prefix
	// VXLANEnabled / IPIPEnabled override whether the encapsulation is
	// set up; nil = as the pools ask.
	VXLANEnabled, IPIPEnabled *bool
	// InterfaceExclude: interfaces never bound to host endpoints.
	InterfaceExclude []*regexp.Regexp
	// InterfaceRefreshInterval: how often the interfaces are listed again
	// besides netlink notifications; 0 = never.
	InterfaceRefreshInterval time.Duration
	// MaxIPSetSize is the maxelem of felix's IP sets; default 1048576.
	MaxIPSetSize int
	// KeepExternalRoutes leaves routes on workload interfaces that felix
	// did not program (Calico's RemoveExternalRoutes=false).
	KeepExternalRoutes bool
	// RouteSource: "CalicoIPAM" (default) routes remote blocks;
	// "WorkloadIPs" routes remote workloads' addresses.
	RouteSource string
	// DeviceRouteSourceAddress(V6): src of workload routes; "" = none.
	DeviceRouteSourceAddress   string
	DeviceRouteSourceAddressV6 string
	// RouteTableRanges are the route tables felix may use; the first two
	// indices (Calico's WireGuard tables) are kept empty. Default 1-250.
	RouteTableRanges []TableRange
	// IPForwardingDisabled leaves ip_forward alone instead of enabling it.
	IPForwardingDisabled bool

	Log *logrus.Entry
}

// TableRange is an inclusive range of route table indices.
type TableRange struct{ Min, Max int }
