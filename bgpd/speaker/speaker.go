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
// match on the neighbour, rebuilt only when they change and applied to the
// routes already exchanged without resetting a session: a soft reset in
// for import rules, a transition policy and a re-stamping of every path
// for export rules, which withdraws what the new rules reject (gobgp's own
// soft reset out never does). Every peer runs graceful restart (RFC 4724)
// so its routes survive a bgpd restart on either side.
package speaker

import (
	"context"
	"errors"
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
	// Restarting says this process restarted with its forwarding state
	// (the previous run's kernel routes) intact: the sessions of the first
	// SetPeers call announce the Restart State bit and the Forwarding
	// State bit of their address family (RFC 4724), so graceful-restart
	// peers keep this node's routes until it sends End-of-RIB, and gobgp
	// defers its updates until every graceful-restart peer has sent its
	// End-of-RIB, at most Deferral (default 120s).
	Restarting bool
	Deferral   time.Duration
	// DrainTimeout bounds how long a removed session keeps running while
	// its routes are not learned elsewhere (default 30s; see Drain).
	DrainTimeout time.Duration
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
	// restarting applies to the sessions of the next SetPeers call only;
	// restartPending are those not up yet (see KeepRestarting).
	restarting     bool
	restartPending map[netip.Addr]bool
	peers          map[netip.Addr]peerState // configured sessions
	// draining are sessions removed from the configuration that still run
	// (see Drain).
	draining map[netip.Addr]drainState
	// policy is the installed policy (final form) of generation gen,
	// built from policyPools and policyPeers.
	policy      *api.SetPoliciesRequest
	gen         uint32
	policyPools []bgpconfig.Pool
	policyPeers []bgpconfig.Peer
	adverts     map[netip.Prefix]*api.Path
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
	if opts.Deferral <= 0 {
		opts.Deferral = 120 * time.Second
	}
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = 30 * time.Second
	}
	if opts.Log == nil {
		l := logrus.New()
		opts.Log = logrus.NewEntry(l)
	}
	s := &Speaker{
		bgp:      server.NewBgpServer(server.LoggerOption(&logger{e: opts.Log.WithField("component", "gobgp")})),
		opts:     opts,
		log:      opts.Log,
		peers:    map[netip.Addr]peerState{},
		draining: map[netip.Addr]drainState{},
		adverts:  map[netip.Prefix]*api.Path{},

		restarting:     opts.Restarting,
		restartPending: map[netip.Addr]bool{},
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
// if they differ from the installed ones and applies them to the routes
// already exchanged, without resetting any session (as BIRD applies a
// changed filter):
//
//   - import rules only: the peers' routes are run through the import
//     policy again (soft reset in);
//   - export statements (rules, next hop modes, pools): a transition
//     policy is installed and every path stamped again, so that paths the
//     new rules reject are withdrawn from the peers that got them and
//     paths they accept are sent (see buildTransition); then the final
//     policy replaces it.
func (s *Speaker) SetPolicy(ctx context.Context, pools []bgpconfig.Pool, peers []bgpconfig.Peer) error {
	s.mu.Lock()
	cur, gen, oldPools, oldPeers := s.policy, s.gen, s.policyPools, s.policyPeers
	s.mu.Unlock()
	if cur == nil {
		return s.firstPolicy(ctx, pools, peers)
	}
	req, err := buildPolicy(pools, peers, gen)
	if err != nil {
		return err
	}
	if proto.Equal(cur, req) {
		return nil
	}
	if exportKey(pools, peers) == exportKey(oldPools, oldPeers) {
		if err := s.bgp.SetPolicies(ctx, req); err != nil {
			return fmt.Errorf("setting bgp policies: %w", err)
		}
		s.setPolicyState(req, gen, pools, peers)
		s.log.Info("BGP import rules changed; re-importing the peers' routes")
		if err := s.bgp.ResetPeer(ctx, &api.ResetPeerRequest{Address: "all", Soft: true, Direction: api.ResetPeerRequest_IN}); err != nil {
			return fmt.Errorf("re-importing routes: %w", err)
		}
		return nil
	}

	gen++
	trans, err := buildTransition(oldPools, oldPeers, pools, peers, gen)
	if err != nil {
		return err
	}
	final, err := buildPolicy(pools, peers, gen)
	if err != nil {
		return err
	}
	s.log.WithField("generation", gen).Info("BGP export policy changed; re-announcing under the new rules")
	if err := s.bgp.SetPolicies(ctx, trans); err != nil {
		return fmt.Errorf("setting the transition bgp policies: %w", err)
	}
	errs := []error{s.restamp(ctx)}
	// Whatever the re-stamping managed, the final policy is right for
	// every path stamped with gen, and those not re-stamped keep
	// what they were sent.
	if err := s.bgp.SetPolicies(ctx, final); err != nil {
		errs = append(errs, fmt.Errorf("setting bgp policies: %w", err))
	} else {
		s.setPolicyState(final, gen, pools, peers)
	}
	return errors.Join(errs...)
}

// firstPolicy installs the first policies and assigns them (SetPolicies
// keeps the assignments of later calls, by policy name).
func (s *Speaker) firstPolicy(ctx context.Context, pools []bgpconfig.Pool, peers []bgpconfig.Peer) error {
	const gen = 1
	req, err := buildPolicy(pools, peers, gen)
	if err != nil {
		return err
	}
	if err := s.bgp.SetPolicies(ctx, req); err != nil {
		return fmt.Errorf("setting bgp policies: %w", err)
	}
	for _, a := range req.Assignments {
		if err := s.bgp.SetPolicyAssignment(ctx, &api.SetPolicyAssignmentRequest{Assignment: a}); err != nil {
			return fmt.Errorf("assigning bgp policy %s: %w", a.Policies[0].Name, err)
		}
	}
	s.setPolicyState(req, gen, pools, peers)
	return nil
}

func (s *Speaker) setPolicyState(req *api.SetPoliciesRequest, gen uint32, pools []bgpconfig.Pool, peers []bgpconfig.Peer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.policy, s.gen = req, gen
	s.policyPools, s.policyPeers = slices.Clone(pools), slices.Clone(peers)
}

// restamp runs every path through the import policy again: this node's
// own advertisements are added again, the peers' routes re-imported.
func (s *Speaker) restamp(ctx context.Context) error {
	s.mu.Lock()
	adverts := make([]*api.Path, 0, len(s.adverts))
	for _, p := range s.adverts {
		adverts = append(adverts, p)
	}
	s.mu.Unlock()
	var errs []error
	for _, p := range adverts {
		if _, err := s.bgp.AddPath(ctx, &api.AddPathRequest{TableType: api.TableType_GLOBAL, Path: p}); err != nil {
			errs = append(errs, fmt.Errorf("re-advertising a path: %w", err))
		}
	}
	if err := s.bgp.ResetPeer(ctx, &api.ResetPeerRequest{Address: "all", Soft: true, Direction: api.ResetPeerRequest_IN}); err != nil {
		errs = append(errs, fmt.Errorf("re-importing routes: %w", err))
	}
	return errors.Join(errs...)
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
