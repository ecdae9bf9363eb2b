package dpapi

import (
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
	Log           *logrus.Entry
}
