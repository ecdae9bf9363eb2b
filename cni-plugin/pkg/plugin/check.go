package plugin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
)

// Check serves CHECK: the addresses are still assigned, the endpoint is
// this container's and matches prevResult, and the interfaces, addresses
// and routes are in place.
func (p *Plugin) Check(ctx context.Context, args *skel.CmdArgs) error {
	a, err := p.attachment(args)
	if err != nil {
		return err
	}
	prev, err := prevResult(p.Conf)
	if err != nil {
		return err
	}
	var pod *current.Interface
	for _, i := range prev.Interfaces {
		if i.Sandbox != "" && i.Name == args.IfName {
			pod = i
		}
	}
	if pod == nil {
		return fmt.Errorf("prevResult has no interface %s in a sandbox", args.IfName)
	}
	addrs := addrsOf(prev)
	if len(addrs) == 0 {
		return errors.New("prevResult has no addresses")
	}
	podMAC, err := net.ParseMAC(pod.Mac)
	if err != nil {
		return fmt.Errorf("prevResult interface %s has MAC %q: %w", pod.Name, pod.Mac, err)
	}

	if err := p.IPAM.Check(ctx, &p.Conf.NetConf, a.args); err != nil {
		return fmt.Errorf("checking addresses: %w", err)
	}

	w, err := p.Endpoint.Get(ctx, a.ids.Namespace, a.ids.Name())
	if err != nil {
		return err
	}
	if w == nil {
		return fmt.Errorf("workload endpoint %s/%s missing", a.ids.Namespace, a.ids.Name())
	}
	if w.Spec.ContainerID != args.ContainerID {
		return fmt.Errorf("workload endpoint %s belongs to container %s", w.Name, w.Spec.ContainerID)
	}
	var want []string
	for _, ad := range addrs {
		want = append(want, netip.PrefixFrom(ad, ad.BitLen()).String())
	}
	got := slices.Clone(w.Spec.IPNetworks)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		return fmt.Errorf("workload endpoint %s has ipNetworks %v, want %v", w.Name, w.Spec.IPNetworks, want)
	}
	if w.Spec.InterfaceName != a.req.HostIfName {
		return fmt.Errorf("workload endpoint %s names interface %s, want %s", w.Name, w.Spec.InterfaceName, a.req.HostIfName)
	}
	if w.Spec.MAC != podMAC.String() {
		return fmt.Errorf("workload endpoint %s has MAC %s, want %s", w.Name, w.Spec.MAC, podMAC)
	}

	a.req.Addrs, a.req.PodMAC = addrs, podMAC
	if err := p.DP.Check(a.req); err != nil {
		return fmt.Errorf("checking %s: %w", args.IfName, err)
	}
	return nil
}

// prevResult decodes the configuration's prevResult, which CHECK needs.
func prevResult(conf *Config) (*current.Result, error) {
	if conf.RawPrevResult == nil {
		return nil, errors.New("CHECK needs a prevResult in the network config")
	}
	pc := types.PluginConf{CNIVersion: conf.CNIVersion, RawPrevResult: conf.RawPrevResult}
	if err := version.ParsePrevResult(&pc); err != nil {
		return nil, fmt.Errorf("parsing prevResult: %w", err)
	}
	r, err := current.NewResultFromResult(pc.PrevResult)
	if err != nil {
		return nil, fmt.Errorf("converting prevResult: %w", err)
	}
	return r, nil
}
