package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/sirupsen/logrus"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/backend"
	"github.com/calico-etcd/calico/libcalico/kubeconv"

	"github.com/calico-etcd/calico/cni-plugin/pkg/netconf"
	"github.com/calico-etcd/calico/cni-plugin/pkg/wep"
)

// addressing says where an ADD's addresses come from when not from
// calico-ipam's automatic assignment.
type addressing struct {
	// requested are assigned through calico-ipam (annotation ipAddrs).
	requested []netip.Addr
	// fixed bypass IPAM altogether (annotation ipAddrsNoIpam).
	fixed []netip.Addr
}

// forPod completes an ADD's attachment in Kubernetes mode: it reads the
// pod from the API server and takes from it the endpoint's labels,
// profiles (kns.<ns>, ksa.<ns>.<sa>) and ports, and what the pod's
// annotations ask of IPAM, as Calico's plugin does. Nothing has been
// done yet when it fails.
func (p *Plugin) forPod(ctx context.Context, a *attachment) error {
	if p.Kube == nil || !a.ids.IsK8s() {
		return nil
	}
	kp, err := p.Kube.Pod(ctx, a.ids.Namespace, a.ids.Pod)
	if err != nil {
		return err
	}
	ep, err := kubeconv.PodEndpoint(kp.Pod)
	if err != nil {
		return err
	}
	annot := kp.Pod.Annotations
	spoof, err := kubeconv.AllowedSourcePrefixes(annot[kubeconv.AnnotationAllowedSourcePrefixes])
	if err != nil {
		return err
	}
	a.network = "" // kns./ksa. profiles, written by kube-controllers
	a.meta = wep.Meta{
		Profiles: ep.Profiles, Labels: ep.Labels, Ports: ep.Ports, ServiceAccount: ep.ServiceAccount,
		GenerateName: ep.GenerateName, AllowSpoofedSourcePrefixes: spoof,
		Annotations: map[string]string{wep.NetworkAnnotation: p.Conf.Name},
	}
	if f := annot[kubeconv.AnnotationFloatingIPs]; f != "" {
		if !p.Conf.FeatureControl.FloatingIPs {
			return fmt.Errorf("pod %s/%s asks for floating IPs (annotation %s), but feature_control.floating_ips is not enabled",
				a.ids.Namespace, a.ids.Pod, kubeconv.AnnotationFloatingIPs)
		}
		if _, err := kubeconv.FloatingIPs(f, nil); err != nil {
			return err
		}
		a.meta.IPNATs = func(addrs []netip.Addr) []v3.IPNAT {
			nats, _ := kubeconv.FloatingIPs(f, addrs) // parsed above
			return nats
		}
	}
	return p.podAddressing(a, annot, kp.NamespaceAnnotations)
}

// podAddressing applies the IPAM annotations: the pod's pools over its
// namespace's, then ipAddrs or ipAddrsNoIpam.
func (p *Plugin) podAddressing(a *attachment, annot, nsAnnot map[string]string) error {
	calico := p.Conf.IPAM.Type == CalicoIPAM
	for _, f := range []struct {
		key  string
		dest *[]string
	}{{kubeconv.AnnotationIPv4Pools, &a.conf.IPAM.IPv4Pools}, {kubeconv.AnnotationIPv6Pools, &a.conf.IPAM.IPv6Pools}} {
		v := annot[f.key]
		if v == "" {
			v = nsAnnot[f.key]
		}
		if v == "" {
			continue
		}
		if !calico {
			a.log.WithField("annotation", f.key).Warn("IP pool annotation ignored: it needs calico-ipam")
			continue
		}
		var pools []string
		if err := json.Unmarshal([]byte(v), &pools); err != nil {
			return fmt.Errorf("parsing annotation %s=%q: %w", f.key, v, err)
		}
		*f.dest = pools
	}
	if v := firstOf(annot[kubeconv.AnnotationIPFamilies], nsAnnot[kubeconv.AnnotationIPFamilies]); v != "" && calico {
		var fams []string
		if err := json.Unmarshal([]byte(v), &fams); err != nil {
			return fmt.Errorf("parsing annotation %s=%q: %w", kubeconv.AnnotationIPFamilies, v, err)
		}
		v4, v6 := "false", "false"
		for _, f := range fams {
			switch f {
			case "IPv4":
				v4 = "true"
			case "IPv6":
				v6 = "true"
			default:
				return fmt.Errorf("annotation %s=%q: %q is not IPv4 or IPv6", kubeconv.AnnotationIPFamilies, v, f)
			}
		}
		a.conf.IPAM.AssignIPv4, a.conf.IPAM.AssignIPv6 = &v4, &v6
		a.req.Families.V4, a.req.Families.V6 = v4 == "true", v6 == "true"
	}
	ipAddrs, noIPAM := annot[kubeconv.AnnotationIPAddrs], annot[kubeconv.AnnotationIPAddrsNoIPAM]
	switch {
	case ipAddrs != "" && noIPAM != "":
		return fmt.Errorf("pod %s/%s has both annotations %s and %s; use one", a.ids.Namespace, a.ids.Pod,
			kubeconv.AnnotationIPAddrs, kubeconv.AnnotationIPAddrsNoIPAM)
	case ipAddrs != "":
		if !calico {
			return fmt.Errorf("annotation %s needs ipam type %s, not %s", kubeconv.AnnotationIPAddrs, CalicoIPAM, p.Conf.IPAM.Type)
		}
		ips, err := annotationIPs(kubeconv.AnnotationIPAddrs, ipAddrs)
		if err != nil {
			return err
		}
		a.addressing.requested = ips
	case noIPAM != "":
		if !calico {
			return fmt.Errorf("annotation %s needs ipam type %s, not %s", kubeconv.AnnotationIPAddrsNoIPAM, CalicoIPAM, p.Conf.IPAM.Type)
		}
		if !p.Conf.FeatureControl.IPAddrsNoIpam {
			return fmt.Errorf("pod %s/%s asks for annotation %s, but feature_control.ip_addrs_no_ipam is not enabled",
				a.ids.Namespace, a.ids.Pod, kubeconv.AnnotationIPAddrsNoIPAM)
		}
		ips, err := annotationIPs(kubeconv.AnnotationIPAddrsNoIPAM, noIPAM)
		if err != nil {
			return err
		}
		a.addressing.fixed = ips
	default:
		return nil
	}
	ips := append(slices.Clone(a.addressing.requested), a.addressing.fixed...)
	a.req.Families.V4 = slices.ContainsFunc(ips, netip.Addr.Is4)
	a.req.Families.V6 = slices.ContainsFunc(ips, netip.Addr.Is6)
	a.log.WithFields(logrus.Fields{"requested": a.addressing.requested, "withoutIPAM": a.addressing.fixed}).Info("addresses from pod annotations")
	return nil
}

func firstOf(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// annotationIPs parses a JSON list of at most one IPv4 and one IPv6
// address, as Calico's plugin accepts in ipAddrs and ipAddrsNoIpam.
func annotationIPs(key, v string) ([]netip.Addr, error) {
	var ss []string
	if err := json.Unmarshal([]byte(v), &ss); err != nil {
		return nil, fmt.Errorf("parsing annotation %s=%q: %w", key, v, err)
	}
	if len(ss) == 0 {
		return nil, fmt.Errorf("annotation %s=%q names no address", key, v)
	}
	var out []netip.Addr
	var v4, v6 int
	for _, s := range ss {
		ip, err := netip.ParseAddr(s)
		if err != nil || ip.Zone() != "" {
			return nil, fmt.Errorf("annotation %s=%q: %q is not an IP address", key, v, s)
		}
		ip = ip.Unmap()
		if ip.Is4() {
			v4++
		} else {
			v6++
		}
		out = append(out, ip)
	}
	if v4 > 1 || v6 > 1 {
		return nil, errors.New("annotation " + key + " may name at most one IPv4 and one IPv6 address")
	}
	return out, nil
}

// fixedAddrs are a pod's addresses that bypass IPAM (annotation
// ipAddrsNoIpam): nothing to write, nothing to give back.
type fixedAddrs []netip.Addr

func (f fixedAddrs) Addrs() []netip.Addr { return nil }

func (f fixedAddrs) Commit(context.Context, ...backend.TxnOp) ([]netip.Addr, int64, error) {
	return slices.Clone(f), 0, nil
}

func (f fixedAddrs) Undo(context.Context) error { return nil }

// requestedAddrs are a pod's requested addresses (annotation ipAddrs),
// assigned when committed through calico-ipam, one call with CNI_ARGS
// IP=<address> each, as Calico's plugin does.
type requestedAddrs struct {
	ipam IPAM
	conf *netconf.NetConf
	args *skel.CmdArgs
	ips  []netip.Addr
	// done are the committed assignments, one per address.
	done []Assignment
}

func (r *requestedAddrs) Addrs() []netip.Addr { return nil }

func (r *requestedAddrs) Commit(ctx context.Context, _ ...backend.TxnOp) ([]netip.Addr, int64, error) {
	var out []netip.Addr
	for _, ip := range r.ips {
		args := *r.args
		args.Args += ";IP=" + ip.String()
		pl, err := r.ipam.Plan(ctx, r.conf, &args)
		var got []netip.Addr
		if err == nil {
			got, _, err = pl.Commit(ctx)
		}
		if err != nil {
			err = fmt.Errorf("assigning %s (annotation %s): %w", ip, kubeconv.AnnotationIPAddrs, err)
			uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
			defer cancel()
			if uerr := r.Undo(uctx); uerr != nil {
				err = errors.Join(err, fmt.Errorf("releasing the other requested addresses: %w", uerr))
			}
			return nil, 0, err
		}
		r.done = append(r.done, pl)
		out = append(out, got...)
	}
	return out, 0, nil
}

func (r *requestedAddrs) Undo(ctx context.Context) error {
	var errs []error
	for _, pl := range r.done {
		errs = append(errs, pl.Undo(ctx))
	}
	r.done = nil
	return errors.Join(errs...)
}
