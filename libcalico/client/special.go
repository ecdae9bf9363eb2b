package client

import (
	"context"
	"errors"
	"fmt"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/cerrors"
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

// crossCheck applies the rules that need other resources: pool overlap,
// the tier of a policy existing, read-only built-ins.
func (c *Client) crossCheck(ctx context.Context, r v3.Resource) error {
	switch r := r.(type) {
	case *v3.Profile:
		if r.Name == DefaultAllowProfile {
			return readOnly(v3.KindProfile, r.Name)
		}
	case *v3.IPPool:
		// A stored pool that does not decode is invisible to IPAM too
		// (ipam skips it), so it is not checked against.
		pools, _, err := c.List(ctx, v3.KindIPPool, ListOptions{})
		if _, err := cerrors.Skipped(err); err != nil {
			return err
		}
		existing := make([]*v3.IPPool, 0, len(pools))
		for _, p := range pools {
			existing = append(existing, p.(*v3.IPPool))
		}
		return v3.CheckPoolOverlap(r, existing)
	case *v3.NetworkPolicy:
		return c.tierExists(ctx, r.Spec.Tier)
	case *v3.GlobalNetworkPolicy:
		return c.tierExists(ctx, r.Spec.Tier)
	case *v3.StagedNetworkPolicy:
		return c.tierExists(ctx, r.Spec.Tier)
	case *v3.StagedGlobalNetworkPolicy:
		return c.tierExists(ctx, r.Spec.Tier)
	}
	return nil
}

func (c *Client) tierExists(ctx context.Context, tier string) error {
	if tier == "" || tier == DefaultTier {
		return nil
	}
	_, err := c.Get(ctx, v3.KindTier, "", tier)
	if errors.Is(err, cerrors.ErrNotFound) {
		return &cerrors.Validation{Fields: []cerrors.FieldError{{Field: "Spec.Tier", Value: tier, Reason: "tier does not exist"}}}
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
