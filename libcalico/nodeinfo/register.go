package nodeinfo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/cerrors"
	"github.com/calico-etcd/calico/libcalico/client"
)

// Options says what this host's Node resource should hold.
type Options struct {
	// Name is the node name (see ResolveName).
	Name string
	// IPv4 and IPv6 are address specs (package doc); IPv4Method and
	// IPv6Method are the autodetection methods.
	IPv4, IPv6             string
	IPv4Method, IPv6Method string
	// ASNumber, when set, becomes the node's AS ("64512" or "1.10").
	ASNumber string
	// K8sNodeRef, when set, is the host's Kubernetes node name: the Node
	// gets the orchRef {orchestrator: k8s, nodeName: K8sNodeRef} (other
	// orchestrators' refs are kept), by which calico-kube-controllers
	// maps Kubernetes nodes to Calico nodes.
	K8sNodeRef string
}

// OrchestratorK8s is the orchRef orchestrator of Kubernetes nodes.
const OrchestratorK8s = "k8s"

// OptionsFromEnv reads IP, IP6, IP_AUTODETECTION_METHOD,
// IP6_AUTODETECTION_METHOD, AS and CALICO_K8S_NODE_REF (as calico-node
// does); getenv is os.Getenv when nil.
func OptionsFromEnv(name string, getenv func(string) string) Options {
	if getenv == nil {
		getenv = os.Getenv
	}
	return Options{
		Name:       name,
		IPv4:       getenv("IP"),
		IPv6:       getenv("IP6"),
		IPv4Method: getenv("IP_AUTODETECTION_METHOD"),
		IPv6Method: getenv("IP6_AUTODETECTION_METHOD"),
		ASNumber:   getenv("AS"),
		K8sNodeRef: strings.TrimSpace(getenv("CALICO_K8S_NODE_REF")),
	}
}

// Registrar writes this host's Node.
type Registrar struct {
	Client   *client.Client
	Detector Detector
	// Log receives what Register changes; nil discards it.
	Log *logrus.Entry
}

// Register makes sure the Node named o.Name exists with the addresses,
// AS and Kubernetes orchRef o asks for, creating or updating it (retrying
// on conflicts), and returns what is stored. An empty IPv4 spec keeps the stored address and
// detects one only when there is none; an empty IPv6 spec keeps the stored
// one and never detects.
func (r Registrar) Register(ctx context.Context, o Options) (*v3.Node, error) {
	if o.Name == "" {
		return nil, errors.New("registering node: no node name")
	}
	if r.Log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		r.Log = logrus.NewEntry(l)
	}
	var as *v3.ASNumber
	if s := strings.TrimSpace(o.ASNumber); s != "" {
		n, err := v3.ASNumberFromString(s)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("registering node %s: AS %q is not a valid AS number", o.Name, s)
		}
		as = &n
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		node, err := r.registerOnce(ctx, o, as)
		if err == nil {
			return node, nil
		}
		if !errors.Is(err, cerrors.ErrConflict) && !errors.Is(err, cerrors.ErrExists) {
			return nil, err
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Duration(attempt+1) * 50 * time.Millisecond):
		}
	}
	return nil, fmt.Errorf("registering node %s: %w", o.Name, lastErr)
}

func (r Registrar) registerOnce(ctx context.Context, o Options, as *v3.ASNumber) (*v3.Node, error) {
	nodes := r.Client.Nodes()
	existing, err := nodes.Get(ctx, "", o.Name)
	create := errors.Is(err, cerrors.ErrNotFound)
	if err != nil && !create {
		return nil, fmt.Errorf("reading node %s: %w", o.Name, err)
	}
	node := existing
	if create {
		node = v3.NewNode()
		node.Name = o.Name
	}
	want := &v3.NodeBGPSpec{}
	if node.Spec.BGP != nil {
		*want = *node.Spec.BGP
	}
	v4, err := r.address(ctx, o.IPv4, o.IPv4Method, want.IPv4Address, false)
	if err != nil {
		return nil, fmt.Errorf("node %s IPv4 address: %w", o.Name, err)
	}
	v6, err := r.address(ctx, o.IPv6, o.IPv6Method, want.IPv6Address, true)
	if err != nil {
		return nil, fmt.Errorf("node %s IPv6 address: %w", o.Name, err)
	}
	want.IPv4Address, want.IPv6Address = v4, v6
	if as != nil {
		want.ASNumber = as
	}
	if *want == (v3.NodeBGPSpec{}) {
		want = nil
	}
	refs := withK8sRef(node.Spec.OrchRefs, o.K8sNodeRef)
	if !create && bgpEqual(node.Spec.BGP, want) && slices.Equal(node.Spec.OrchRefs, refs) {
		return node, nil
	}
	node.Spec.BGP = want
	node.Spec.OrchRefs = refs
	r.warnDuplicates(ctx, node)
	if create {
		r.Log.WithFields(logrus.Fields{"node": o.Name, "ipv4": v4, "ipv6": v6, "k8sNodeRef": o.K8sNodeRef}).Info("Creating node")
		return nodes.Create(ctx, node)
	}
	r.Log.WithFields(logrus.Fields{"node": o.Name, "ipv4": v4, "ipv6": v6, "k8sNodeRef": o.K8sNodeRef}).Info("Updating node")
	return nodes.Update(ctx, node)
}

// withK8sRef returns refs with ref as its one Kubernetes orchRef, the
// others kept in order; refs itself when ref is "" or already the only
// one.
func withK8sRef(refs []v3.OrchRef, ref string) []v3.OrchRef {
	if ref == "" {
		return refs
	}
	want := v3.OrchRef{Orchestrator: OrchestratorK8s, NodeName: ref}
	out := make([]v3.OrchRef, 0, len(refs)+1)
	found := false
	for _, r := range refs {
		switch {
		case r.Orchestrator != OrchestratorK8s:
			out = append(out, r)
		case !found:
			out = append(out, want)
			found = true
		}
	}
	if !found {
		out = append(out, want)
	}
	return out
}

// address resolves one family's spec against the stored value.
func (r Registrar) address(ctx context.Context, spec, method, stored string, v6 bool) (string, error) {
	if strings.TrimSpace(spec) == "" && (stored != "" || v6) {
		return stored, nil
	}
	p, err := r.Detector.Resolve(ctx, spec, method, v6)
	if err != nil {
		return "", err
	}
	if !p.IsValid() {
		return "", nil
	}
	return p.String(), nil
}

func bgpEqual(a, b *v3.NodeBGPSpec) bool {
	if a == nil || b == nil {
		return a == b
	}
	if (a.ASNumber == nil) != (b.ASNumber == nil) || (a.ASNumber != nil && *a.ASNumber != *b.ASNumber) {
		return false
	}
	x, y := *a, *b
	x.ASNumber, y.ASNumber = nil, nil
	return x == y
}

// warnDuplicates logs other nodes that claim the same BGP address.
func (r Registrar) warnDuplicates(ctx context.Context, node *v3.Node) {
	if node.Spec.BGP == nil {
		return
	}
	mine := map[netip.Addr]bool{}
	for _, s := range []string{node.Spec.BGP.IPv4Address, node.Spec.BGP.IPv6Address} {
		if p, err := netip.ParsePrefix(s); err == nil {
			mine[p.Addr()] = true
		}
	}
	all, _, err := r.Client.Nodes().List(ctx, client.ListOptions{})
	if _, err := cerrors.Skipped(err); err != nil {
		return
	}
	for _, other := range all {
		if other.Name == node.Name || other.Spec.BGP == nil {
			continue
		}
		for _, s := range []string{other.Spec.BGP.IPv4Address, other.Spec.BGP.IPv6Address} {
			if p, err := netip.ParsePrefix(s); err == nil && mine[p.Addr()] {
				r.Log.WithFields(logrus.Fields{"node": node.Name, "other": other.Name, "address": p.Addr()}).
					Warn("Another node uses the same BGP address")
			}
		}
	}
}
