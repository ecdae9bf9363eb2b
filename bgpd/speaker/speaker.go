// Package speaker is bgpd's BGP speaker: an embedded gobgp server
// (github.com/osrg/gobgp/v3) driven by bgpconfig values.
//
//	Start(global) ─► SetPolicy(pools, peers) ─► SetPeers(peers) ─► Advertise/Withdraw(prefix)
//	                                                                      │
//	Watch(fn) ◄── best paths, End-of-RIB markers, peer state ◄── gobgp ◄──┘ sessions
//
// SetPeers diffs against the sessions it configured before and touches
// only the peers that changed, so a reload never resets an unchanged
// session. Policies (pool export rules, BGPFilter rules, next hop modes)
// are one global import and one global export policy whose statements
// match on the neighbour, rebuilt only when they change and applied with a
// soft reset. Every peer runs graceful restart (RFC 4724) so its routes
// survive a bgpd restart on either side.
package speaker

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
	"github.com/osrg/gobgp/v3/pkg/server"
	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/proto"

	"github.com/calico-etcd/calico/libcalico/bgpconfig"
)

// Global is the speaker-wide configuration; changing it needs a new
// Speaker.
type Global struct {
	ASNumber        uint32
	RouterID        string
	ListenPort      int32 // -1: do not listen
	ListenAddresses []string
}

// GlobalOf extracts the speaker-wide part of a config.
func GlobalOf(c *bgpconfig.Config) Global {
	return Global{ASNumber: c.ASNumber, RouterID: c.RouterID, ListenPort: int32(c.ListenPort), ListenAddresses: c.ListenAddresses}
}

// Equal compares two Globals.
func (g Global) Equal(o Global) bool {
	return g.ASNumber == o.ASNumber && g.RouterID == o.RouterID && g.ListenPort == o.ListenPort &&
		slices.Equal(g.ListenAddresses, o.ListenAddresses)
}

// Options tune a Speaker.
type Options struct {
	// ConnectRetry is the wait between connection attempts (default 5s).
	ConnectRetry time.Duration
	// Log receives the speaker's and gobgp's messages.
	Log *logrus.Entry
}

// Speaker is one running gobgp server. Its methods are safe for
// concurrent use; the daemon calls the mutating ones from one goroutine.
type Speaker struct {
	bgp  *server.BgpServer
	opts Options
	log  *logrus.Entry

	mu      sync.Mutex
	global  Global
	started time.Time
	peers   map[netip.Addr]peerState // configured sessions
	policy  *api.SetPoliciesRequest  // last applied
	// exportKeys fingerprint each peer's own export statements.
	exportKeys map[string]string
	adverts    map[netip.Prefix]*api.Path
}

type peerState struct {
	cfg   bgpconfig.Peer
	added time.Time
}

// New returns a speaker whose server is running but not started.
func New(opts Options) *Speaker {
	if opts.ConnectRetry <= 0 {
		opts.ConnectRetry = 5 * time.Second
	}
	if opts.Log == nil {
		l := logrus.New()
		opts.Log = logrus.NewEntry(l)
	}
	s := &Speaker{
		bgp:     server.NewBgpServer(server.LoggerOption(&logger{e: opts.Log.WithField("component", "gobgp")})),
		opts:    opts,
		log:     opts.Log,
		peers:   map[netip.Addr]peerState{},
		adverts: map[netip.Prefix]*api.Path{},
	}
	go s.bgp.Serve()
	return s
}

// Start starts BGP with g.
func (s *Speaker) Start(ctx context.Context, g Global) error {
	err := s.bgp.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn:             g.ASNumber,
		RouterId:        g.RouterID,
		ListenPort:      g.ListenPort,
		ListenAddresses: g.ListenAddresses,
	}})
	if err != nil {
		return fmt.Errorf("starting bgp (as %d, router id %s, port %d): %w", g.ASNumber, g.RouterID, g.ListenPort, err)
	}
	s.mu.Lock()
	s.global, s.started = g, time.Now()
	s.mu.Unlock()
	return nil
}

// Global returns what Start was called with.
func (s *Speaker) Global() Global {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.global
}

// Stop ends every session (with a Cease notification) and the server.
func (s *Speaker) Stop() { s.bgp.Stop() }

// SetPolicy installs the import and export policies for pools and peers
// if they differ from the installed ones, then soft-resets every session
// so the new policies apply to routes already exchanged. gobgp's soft
// reset out does not withdraw routes a new export policy rejects, so a
// configured session whose own export rules or next hop mode changed is
// reset (only that one).
func (s *Speaker) SetPolicy(ctx context.Context, pools []bgpconfig.Pool, peers []bgpconfig.Peer) error {
	req, err := buildPolicy(pools, peers)
	if err != nil {
		return err
	}
	s.mu.Lock()
	same := s.policy != nil && proto.Equal(s.policy, req)
	reset := s.exportChanged(peers)
	s.mu.Unlock()
	if same {
		return nil
	}
	if err := s.bgp.SetPolicies(ctx, req); err != nil {
		return fmt.Errorf("setting bgp policies: %w", err)
	}
	s.mu.Lock()
	first := s.policy == nil
	s.mu.Unlock()
	if first {
		// SetPolicies keeps the existing assignments (by policy name), so
		// the global import and export assignments are made once.
		for _, a := range req.Assignments {
			if err := s.bgp.SetPolicyAssignment(ctx, &api.SetPolicyAssignmentRequest{Assignment: a}); err != nil {
				return fmt.Errorf("assigning bgp policy %s: %w", a.Policies[0].Name, err)
			}
		}
	}
	s.mu.Lock()
	s.policy = req
	n := len(s.peers)
	s.mu.Unlock()
	if first || n == 0 {
		return nil
	}
	s.log.Info("BGP policy changed; soft-resetting sessions")
	err = s.bgp.ResetPeer(ctx, &api.ResetPeerRequest{Address: "all", Soft: true, Direction: api.ResetPeerRequest_BOTH})
	if err != nil {
		return fmt.Errorf("soft-resetting sessions: %w", err)
	}
	for _, addr := range reset {
		s.log.WithField("peer", addr).Info("Export rules of the peer changed; resetting its session")
		if err := s.bgp.ResetPeer(ctx, &api.ResetPeerRequest{Address: addr, Communication: "export policy changed"}); err != nil {
			return fmt.Errorf("resetting session with %s: %w", addr, err)
		}
	}
	return nil
}

// exportChanged records the peers' export fingerprints and returns the
// configured sessions whose fingerprint changed. Called with mu held.
func (s *Speaker) exportChanged(peers []bgpconfig.Peer) []string {
	keys := make(map[string]string, len(peers))
	var changed []string
	for _, p := range peers {
		k := exportKey(p)
		keys[p.Address] = k
		a, err := netip.ParseAddr(p.Address)
		if old, ok := s.exportKeys[p.Address]; ok && old != k && err == nil {
			if _, configured := s.peers[a]; configured {
				changed = append(changed, p.Address)
			}
		}
	}
	s.exportKeys = keys
	return changed
}

// exportKey identifies what a peer's own export statements depend on.
func exportKey(p bgpconfig.Peer) string {
	b, _ := json.Marshal(struct {
		NextHop string
		Rules   []bgpconfig.FilterRule
	}{p.NextHop, p.ExportRules})
	return string(b)
}

// logger adapts gobgp's logger to logrus.
type logger struct{ e *logrus.Entry }

var _ gobgplog.Logger = (*logger)(nil)

func (l *logger) with(f gobgplog.Fields) *logrus.Entry { return l.e.WithFields(logrus.Fields(f)) }

func (l *logger) Panic(msg string, f gobgplog.Fields) { l.with(f).Panic(msg) }
func (l *logger) Fatal(msg string, f gobgplog.Fields) { l.with(f).Fatal(msg) }
func (l *logger) Error(msg string, f gobgplog.Fields) { l.with(f).Error(msg) }
func (l *logger) Warn(msg string, f gobgplog.Fields)  { l.with(f).Warn(msg) }
func (l *logger) Info(msg string, f gobgplog.Fields)  { l.with(f).Info(msg) }
func (l *logger) Debug(msg string, f gobgplog.Fields) { l.with(f).Debug(msg) }

func (l *logger) SetLevel(level gobgplog.LogLevel) { l.e.Logger.SetLevel(logrus.Level(level)) }
func (l *logger) GetLevel() gobgplog.LogLevel      { return gobgplog.LogLevel(l.e.Logger.GetLevel()) }
