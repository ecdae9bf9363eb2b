package commands

import (
	"context"
	"fmt"
	"math/big"
	"math/bits"
	"net/netip"
	"strconv"

	"github.com/spf13/cobra"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/client"
)

// maxSplit bounds ipam split's NUMBER: the pool and its parts are
// swapped in one etcd transaction.
const maxSplit = 64

func newIPAMSplitCmd(env *Env) *cobra.Command {
	var cidr, name string
	cmd := &cobra.Command{
		Use:   "split NUMBER (--cidr=CIDR | --name=NAME)",
		Short: "Split an IP pool into the specified number of smaller IP pools",
		Long: `Split an IP pool, named by --name or by its --cidr, into NUMBER smaller pools
of equal size. NUMBER must be a power of 2 (at most 64), and each new pool
at least as large as the pool's blocks. The new pools are named
split-<pool>-<i> and keep the pool's other settings. The pool is replaced by
them in one transaction: either every new pool exists and the pool is gone,
or nothing changed. Addresses allocated from the pool's blocks stay
allocated; each block now lies in one of the new pools.

As in Calico, the datastore must be locked while the pool is split.`,
		Example: `  calicoctl datastore migrate lock
  calicoctl ipam split 4 --name=default-ipv4-ippool
  calicoctl datastore migrate unlock`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return env.runIPAMSplit(cmd.Context(), args[0], cidr, name)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&cidr, "cidr", "", "CIDR of the IP pool to split")
	fl.StringVar(&name, "name", "", "name of the IP pool to split")
	return cmd
}

func (env *Env) runIPAMSplit(ctx context.Context, number, cidr, name string) error {
	parts, err := strconv.Atoi(number)
	if err != nil {
		return failf(err, "error reading number to split IP pools into. %s is not a valid number: %v", number, err)
	}
	if cidr == "" && name == "" {
		return failf(nil, "no name or CIDR provided. Provide a name or CIDR to denote the IP pool to split")
	}
	var want netip.Prefix
	if cidr != "" {
		if want, err = netip.ParsePrefix(cidr); err != nil {
			return failf(err, "error with field --cidr = '%s' (must be a CIDR)", cidr)
		}
		want = want.Masked()
	}
	if err := checkSplitNumber(parts); err != nil {
		return failf(err, "%v", err)
	}
	c, err := env.Client()
	if err != nil {
		return err
	}
	locked, err := checkLocked(ctx, c)
	if err != nil {
		return failf(err, "error while checking if datastore was locked: %v", err)
	}
	if !locked {
		return failf(nil, "datastore is not locked. Run the `calicoctl datastore migrate lock` command in order to split the IP pools")
	}
	pool, err := findPool(ctx, c, name, want)
	if err != nil {
		return err
	}
	cidrs, err := splitCIDR(pool.Spec.CIDR, parts)
	if err != nil {
		return failf(err, "error splitting the CIDR %s into %d CIDRs: %v", pool.Spec.CIDR, parts, err)
	}
	adds := make([]v3.Resource, len(cidrs))
	for i, p := range cidrs {
		np := v3.Clone(pool)
		np.ObjectMeta = v3.ObjectMeta{Name: splitName(pool.Name, i), Labels: pool.Labels, Annotations: pool.Annotations}
		np.Spec.CIDR = p.String()
		adds[i] = np
	}
	if _, err := c.Swap(ctx, []v3.Resource{pool}, adds); err != nil {
		return failf(err, "error splitting IP pool %s: %v", pool.Name, err)
	}
	fmt.Fprintf(env.Stdout, "IP Pool %s was successfully split into %d smaller pools.\n", pool.Name, parts)
	for _, a := range adds {
		fmt.Fprintf(env.Stdout, "Created %s with CIDR %s.\n", a.GetObjectMeta().Name, a.(*v3.IPPool).Spec.CIDR)
	}
	fmt.Fprintln(env.Stdout, "Please refer to the documentation for final steps: unlock the datastore with 'calicoctl datastore migrate unlock'.")
	return nil
}

// findPool finds the pool to split by name, else by CIDR; given both,
// they must agree.
func findPool(ctx context.Context, c *client.Client, name string, cidr netip.Prefix) (*v3.IPPool, error) {
	if name != "" {
		p, err := c.IPPools().Get(ctx, "", name)
		if err != nil {
			return nil, failf(err, "unable to find IP pool with name %s: %v", name, err)
		}
		if pc, err := netip.ParsePrefix(p.Spec.CIDR); cidr.IsValid() && (err != nil || pc.Masked() != cidr) {
			return nil, failf(nil, "IP pool %s has CIDR %s, not %s", name, p.Spec.CIDR, cidr)
		}
		return p, nil
	}
	pools, _, err := c.IPPools().List(ctx, client.ListOptions{})
	if err != nil {
		return nil, failf(err, "unable to list IP pools to find the pool specified by %s: %v", cidr, err)
	}
	for _, p := range pools {
		if pc, err := netip.ParsePrefix(p.Spec.CIDR); err == nil && pc.Masked() == cidr {
			return p, nil
		}
	}
	return nil, failf(nil, "unable to find IP pool covering the specified CIDR %s", cidr)
}

// splitName is Calico's name of part i of a split pool.
func splitName(pool string, i int) string {
	if len(pool) > 245 {
		pool = pool[:245]
	}
	return fmt.Sprintf("split-%s-%d", pool, i)
}

func checkSplitNumber(parts int) error {
	if parts < 2 || parts&(parts-1) != 0 {
		return fmt.Errorf("number to split CIDR into is not a valid power of 2: %d", parts)
	}
	if parts > maxSplit {
		return fmt.Errorf("number to split CIDR into is larger than %d: %d", maxSplit, parts)
	}
	return nil
}

// splitCIDR cuts cidr into parts equal prefixes, in address order.
func splitCIDR(cidr string, parts int) ([]netip.Prefix, error) {
	if err := checkSplitNumber(parts); err != nil {
		return nil, err
	}
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return nil, fmt.Errorf("error reading CIDR %s before attempting to split it", cidr)
	}
	p = p.Masked()
	power := bits.TrailingZeros(uint(parts))
	total := p.Addr().BitLen()
	if p.Bits()+power > total {
		return nil, fmt.Errorf("the CIDR %s is not large enough to be split into %d parts", cidr, parts)
	}
	size := p.Bits() + power
	step := new(big.Int).Lsh(big.NewInt(1), uint(total-size))
	n := new(big.Int).SetBytes(p.Addr().AsSlice())
	out := make([]netip.Prefix, parts)
	for i := range out {
		buf := make([]byte, total/8)
		n.FillBytes(buf)
		a, _ := netip.AddrFromSlice(buf)
		out[i] = netip.PrefixFrom(a, size)
		n.Add(n, step)
	}
	return out, nil
}
