// Package defaultpools creates a cluster's default IP pools from the
// environment, as calico-node does at start (CALICO_IPV4POOL_CIDR and
// friends, as Calico's manifests set them):
//
//	CALICO_IPV4POOL_CIDR          the IPv4 pool "default-ipv4-ippool"; unset or "none": no pool
//	CALICO_IPV4POOL_BLOCK_SIZE    default 26
//	CALICO_IPV4POOL_IPIP          Never (default, also "off"), Always, CrossSubnet (case-insensitive)
//	CALICO_IPV4POOL_VXLAN         likewise
//	CALICO_IPV4POOL_NAT_OUTGOING  default true
//	CALICO_IPV4POOL_NODE_SELECTOR default all()
//	CALICO_IPV4POOL_DISABLE_BGP_EXPORT default false
//	CALICO_IPV6POOL_*             the same for "default-ipv6-ippool" (no _IPIP;
//	                              block size 122, NAT outgoing false by default)
//	NO_DEFAULT_POOLS=true         no pools; an error if a CIDR is set as well
//
// A pool is created only while the cluster has no pool of its IP version,
// so it happens once per cluster: later starts, and pools the operator
// made or changed since, are left alone. Hosts starting at once race on
// the datastore's create (which fails if the key exists); the losers see
// ErrExists and carry on. Unlike calico-node, an unset CIDR means no pool
// rather than 192.168.0.0/16 (IPv4) or a random ULA prefix (IPv6): pools
// appear only when the installation asks for them.
package defaultpools

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/sirupsen/logrus"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/cerrors"
	"github.com/calico-etcd/calico/libcalico/client"
)

// Pool names, as Calico's.
const (
	IPv4Name = "default-ipv4-ippool"
	IPv6Name = "default-ipv6-ippool"
)

// Options are the pools to make; a nil pool is not made.
type Options struct {
	IPv4, IPv6 *v3.IPPool
}

// Empty reports whether no pool is asked for.
func (o Options) Empty() bool { return o.IPv4 == nil && o.IPv6 == nil }

// FromEnv reads the variables in the package doc (getenv is os.Getenv's
// shape; LookupEnv semantics are not needed: an empty value counts as
// unset) and returns the pools they ask for, validated.
func FromEnv(getenv func(string) string) (Options, error) {
	get := func(k string) string { return strings.TrimSpace(getenv(k)) }
	v4, v6 := get("CALICO_IPV4POOL_CIDR"), get("CALICO_IPV6POOL_CIDR")
	if strings.EqualFold(get("NO_DEFAULT_POOLS"), "true") {
		if (v4 != "" && v4 != "none") || (v6 != "" && v6 != "none") {
			return Options{}, errors.New("NO_DEFAULT_POOLS=true contradicts CALICO_IPV4POOL_CIDR/CALICO_IPV6POOL_CIDR: set one or the other")
		}
		return Options{}, nil
	}
	var o Options
	var errs []error
	if v4 != "" && v4 != "none" {
		p, err := fromEnv(get, 4, v4)
		errs = append(errs, err)
		o.IPv4 = p
	}
	if v6 != "" && v6 != "none" {
		p, err := fromEnv(get, 6, v6)
		errs = append(errs, err)
		o.IPv6 = p
	}
	if err := errors.Join(errs...); err != nil {
		return Options{}, err
	}
	return o, nil
}

func fromEnv(get func(string) string, version int, cidr string) (*v3.IPPool, error) {
	prefix := fmt.Sprintf("CALICO_IPV%dPOOL_", version)
	p := v3.NewIPPool()
	p.Name, p.Spec.BlockSize, p.Spec.NATOutgoing = IPv4Name, 26, true
	if version == 6 {
		p.Name, p.Spec.BlockSize, p.Spec.NATOutgoing = IPv6Name, 122, false
	}
	c, err := netip.ParsePrefix(cidr)
	if err != nil || (c.Addr().Is4() != (version == 4)) {
		return nil, fmt.Errorf("%sCIDR %q is not an IPv%d CIDR", prefix, cidr, version)
	}
	p.Spec.CIDR = c.Masked().String()
	var errs []error
	if s := get(prefix + "BLOCK_SIZE"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("%sBLOCK_SIZE %q is not a number", prefix, s))
		}
		p.Spec.BlockSize = n
	}
	if version == 4 {
		m, err := EncapMode(get(prefix + "IPIP"))
		if err != nil {
			errs = append(errs, fmt.Errorf("%sIPIP: %w", prefix, err))
		}
		p.Spec.IPIPMode = v3.IPIPMode(m)
	}
	m, err := EncapMode(get(prefix + "VXLAN"))
	if err != nil {
		errs = append(errs, fmt.Errorf("%sVXLAN: %w", prefix, err))
	}
	p.Spec.VXLANMode = v3.VXLANMode(m)
	if s := get(prefix + "NAT_OUTGOING"); s != "" {
		p.Spec.NATOutgoing = envBool(s)
	}
	if s := get(prefix + "DISABLE_BGP_EXPORT"); s != "" {
		p.Spec.DisableBGPExport = envBool(s)
	}
	p.Spec.NodeSelector = get(prefix + "NODE_SELECTOR")
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	p.Default()
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("default IPv%d pool from %s*: %w", version, prefix, err)
	}
	return p, nil
}

// EncapMode reads an IPIP or VXLAN mode as calico-node does (any case;
// "" and "off" are Never).
func EncapMode(s string) (string, error) {
	switch strings.ToLower(s) {
	case "", "off", "never":
		return "Never", nil
	case "always":
		return "Always", nil
	case "crosssubnet", "cross-subnet":
		return "CrossSubnet", nil
	}
	return "", fmt.Errorf("%q is not Never, Always or CrossSubnet", s)
}

// envBool is calico-node's reading: false, 0, no, n, f (any case) are
// false, anything else true.
func envBool(s string) bool {
	switch strings.ToLower(s) {
	case "false", "0", "no", "n", "f":
		return false
	}
	return true
}

// Ensure creates each pool in o whose IP version has no pool in the
// cluster yet, and returns the names it created. A pool another host
// created first (ErrExists) is not an error. log may be nil.
func Ensure(ctx context.Context, c *client.Client, o Options, log *logrus.Entry) ([]string, error) {
	if o.Empty() {
		return nil, nil
	}
	pools, _, err := c.IPPools().List(ctx, client.ListOptions{})
	if _, err = cerrors.Skipped(err); err != nil {
		return nil, fmt.Errorf("listing IP pools: %w", err)
	}
	have := map[bool]bool{}
	for _, p := range pools {
		if pr, err := netip.ParsePrefix(p.Spec.CIDR); err == nil {
			have[pr.Addr().Is4()] = true
		}
	}
	var created []string
	for _, want := range []*v3.IPPool{o.IPv4, o.IPv6} {
		if want == nil {
			continue
		}
		cidr, err := netip.ParsePrefix(want.Spec.CIDR)
		if err != nil {
			return created, fmt.Errorf("default pool %s: %w", want.Name, err)
		}
		is4 := cidr.Addr().Is4()
		fields := logrus.Fields{"pool": want.Name, "cidr": want.Spec.CIDR, "ipipMode": want.Spec.IPIPMode,
			"vxlanMode": want.Spec.VXLANMode, "natOutgoing": want.Spec.NATOutgoing, "blockSize": want.Spec.BlockSize}
		if have[is4] {
			logf(log, fields, "A pool of this IP version exists; not creating the default pool")
			continue
		}
		_, err = c.IPPools().Create(ctx, v3.Clone(want))
		switch {
		case errors.Is(err, cerrors.ErrExists):
			logf(log, fields, "Another host created the default pool first")
		case err != nil:
			return created, fmt.Errorf("creating default pool %s (%s): %w", want.Name, want.Spec.CIDR, err)
		default:
			logf(log, fields, "Created the default pool")
			created = append(created, want.Name)
		}
	}
	return created, nil
}

func logf(log *logrus.Entry, f logrus.Fields, msg string) {
	if log != nil {
		log.WithFields(f).Info(msg)
	}
}
