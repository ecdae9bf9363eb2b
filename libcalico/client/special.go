package client

import (
	"context"
	"errors"
	"fmt"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/cerrors"
	"github.com/calico-etcd/calico/libcalico/model"
)

// DefaultAllowProfile is synthesized on read and never stored.
const DefaultAllowProfile = "projectcalico-default-allow"

// DefaultTier always exists once the datastore is initialized.
const DefaultTier = "default"

func defaultAllowProfile() *v3.Profile {
	p := v3.NewProfile()
	p.Name = DefaultAllowProfile
	p.ResourceVersion = "1"
	p.Spec.Ingress = []v3.Rule{{Action: v3.Allow}}
	p.Spec.Egress = []v3.Rule{{Action: v3.Allow}}
	return p
}

func synthesized(kind, name string) v3.Resource {
	if kind == v3.KindProfile && name == DefaultAllowProfile {
		return defaultAllowProfile()
	}
	return nil
}

func readOnly(kind, name string) error {
	return &cerrors.Validation{Fields: []cerrors.FieldError{{
		Field: "Metadata.Name", Value: name,
		Reason: fmt.Sprintf("%s %s is built in and cannot be changed or deleted", kind, name),
	}}}
}

// Validate checks r as every write does before it reads the datastore:
// a built-in resource is refused, then a copy of r is defaulted and each
// field validated. r itself is left as it is. It needs no datastore.
// Errors are *cerrors.Validation, naming the field and the value.
func Validate(r v3.Resource) error {
	_, err := validated(r)
	return err
}

// validated is Validate returning the defaulted copy.
func validated(in v3.Resource) (v3.Resource, error) {
	if in == nil {
		return nil, errors.New("nil resource")
	}
	kind, name := in.GetTypeMeta().Kind, in.GetObjectMeta().Name
	info, ok := v3.LookupKind(kind)
	if !ok {
		return nil, fmt.Errorf("unknown resource kind %q", kind)
	}
	if kind == v3.KindProfile && name == DefaultAllowProfile {
		return nil, readOnly(kind, name)
	}
	r := v3.Clone(in)
	if info.Namespaced && r.GetObjectMeta().Namespace == "" {
		r.GetObjectMeta().Namespace = v3.DefaultNamespace
	}
	r.Default()
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return r, nil
}

// Checker applies the rules that need other resources: an IPPool must
// not overlap another, and a policy's tier must exist. It checks
// resources that are to be written in order, each as if those before it
// were written, and reads the datastore once for each thing it needs.
// It is not safe for concurrent use.
type Checker struct {
	c *Client
	// Skipped, when set, is given the stored values a read skipped because
	// they do not decode; the checks go on without them.
	Skipped func(...*cerrors.Corrupt)

	batch map[string]bool            // names of the pools to be written
	pools []*v3.IPPool               // pools a pool must not overlap; nil until read
	prior map[string]*v3.IPPool      // stored pools that are written again
	tiers map[string]bool            // tiers known to exist
	gone  map[model.ResourceKey]bool // stored pools to be deleted (Swap)
}

// NewChecker returns a Checker for batch, the resources to be written,
// in order. A stored pool that batch writes again is checked as an update
// of the stored one (CIDR and block size kept), not as another pool.
func (c *Client) NewChecker(batch []v3.Resource) *Checker {
	k := &Checker{c: c, batch: map[string]bool{}, prior: map[string]*v3.IPPool{},
		tiers: map[string]bool{DefaultTier: true}}
	for _, r := range batch {
		if r.GetTypeMeta().Kind == v3.KindIPPool {
			k.batch[r.GetObjectMeta().Name] = true
		}
	}
	return k
}

// Check checks r, which has passed Validate, against the datastore and
// the resources checked before it.
func (k *Checker) Check(ctx context.Context, r v3.Resource) error {
	d := v3.Clone(r)
	d.Default()
	return k.check(ctx, d)
}

// check is Check of a resource already defaulted.
func (k *Checker) check(ctx context.Context, r v3.Resource) error {
	switch r := r.(type) {
	case *v3.IPPool:
		return k.checkPool(ctx, r)
	case *v3.Tier:
		k.tiers[r.Name] = true
	case *v3.NetworkPolicy:
		return k.tierExists(ctx, r.Spec.Tier)
	case *v3.GlobalNetworkPolicy:
		return k.tierExists(ctx, r.Spec.Tier)
	case *v3.StagedNetworkPolicy:
		return k.tierExists(ctx, r.Spec.Tier)
	case *v3.StagedGlobalNetworkPolicy:
		return k.tierExists(ctx, r.Spec.Tier)
	}
	return nil
}

func (k *Checker) checkPool(ctx context.Context, p *v3.IPPool) error {
	if k.pools == nil {
		// A stored pool that does not decode is invisible to IPAM too
		// (ipam skips it), so it is not checked against.
		stored, _, err := k.c.List(ctx, v3.KindIPPool, ListOptions{})
		if err := k.skip(err); err != nil {
			return err
		}
		k.pools = []*v3.IPPool{}
		for _, s := range stored {
			s := s.(*v3.IPPool)
			switch {
			case k.gone[KeyFor(s)]:
			case k.batch[s.Name]:
				k.prior[s.Name] = s
			default:
				k.pools = append(k.pools, s)
			}
		}
	}
	if old, ok := k.prior[p.Name]; ok {
		if err := v3.ValidateIPPoolUpdate(old, p); err != nil {
			return err
		}
	}
	if err := v3.CheckPoolOverlap(p, k.pools); err != nil {
		return err
	}
	k.pools = append(k.pools, p)
	return nil
}

func (k *Checker) tierExists(ctx context.Context, tier string) error {
	if tier == "" || k.tiers[tier] {
		return nil
	}
	_, err := k.c.Get(ctx, v3.KindTier, "", tier)
	if errors.Is(err, cerrors.ErrNotFound) {
		return &cerrors.Validation{Fields: []cerrors.FieldError{{Field: "Spec.Tier", Value: tier, Reason: "tier does not exist"}}}
	}
	if err == nil {
		k.tiers[tier] = true
	}
	return err
}

// skip hands the values a partial read skipped to k.Skipped and returns
// the rest of err.
func (k *Checker) skip(err error) error {
	skipped, err := cerrors.Skipped(err)
	if len(skipped) > 0 && k.Skipped != nil {
		k.Skipped(skipped...)
	}
	return err
}

// checkUpdate applies rules between the stored and the new resource.
func (c *Client) checkUpdate(cur, next v3.Resource) error {
	if p, ok := next.(*v3.IPPool); ok {
		return v3.ValidateIPPoolUpdate(cur.(*v3.IPPool), p)
	}
	return nil
}

// checkDelete refuses to delete built-ins and non-empty tiers.
func (c *Client) checkDelete(ctx context.Context, kind, namespace, name string) error {
	switch {
	case kind == v3.KindProfile && name == DefaultAllowProfile:
		return readOnly(kind, name)
	case kind == v3.KindTier && name == DefaultTier:
		return readOnly(kind, name)
	case kind == v3.KindTier:
		for _, k := range []string{v3.KindNetworkPolicy, v3.KindGlobalNetworkPolicy} {
			// A policy that does not decode is in no tier felix sees;
			// rewriting it later needs its tier to exist again.
			items, _, err := c.List(ctx, k, ListOptions{})
			if _, err := cerrors.Skipped(err); err != nil {
				return err
			}
			for _, it := range items {
				if it.GetObjectMeta().Labels[v3.LabelTier] == name {
					return &cerrors.Validation{Fields: []cerrors.FieldError{{Field: "Metadata.Name", Value: name,
						Reason: fmt.Sprintf("tier still holds %s %s", k, it.GetObjectMeta().Name)}}}
				}
			}
		}
	}
	return nil
}
