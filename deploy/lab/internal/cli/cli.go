// Package cli is calico-lab's command line.
package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/calico-etcd/calico/deploy/lab/internal/lab"
	"github.com/calico-etcd/calico/libcalico/buildinfo"
	"github.com/calico-etcd/calico/libcalico/defaultpools"
	"github.com/calico-etcd/calico/testutil/kubeapi"
)

// DefaultStateDir is where the lab records what it made.
const DefaultStateDir = "/var/run/calico-lab"

type flags struct {
	dir, binDir, name string
}

// Execute runs calico-lab with args and returns the exit code.
func Execute(args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	if err := root.Execute(); err != nil {
		fmt.Fprintln(stderr, "Error:", err)
		return 1
	}
	return 0
}

func defaultBinDir() string {
	exe, err := os.Executable()
	if err != nil {
		return "bin"
	}
	return filepath.Dir(exe)
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	f := &flags{}
	root := &cobra.Command{
		Use:           "calico-lab",
		Short:         "A Calico cluster on one machine: hosts are network namespaces",
		Version:       buildinfo.Version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	pf := root.PersistentFlags()
	pf.StringVar(&f.dir, "state-dir", DefaultStateDir, "where the lab records what it made")
	pf.StringVar(&f.binDir, "bin-dir", defaultBinDir(), "directory holding calico-felix, calico-confd, calico-bgpd, calico-cni-agent and the CNI plugins")
	pf.StringVar(&f.name, "name", "clab", "prefix of the lab's network namespaces")
	root.AddCommand(newUp(f, stdout), newDown(f, stdout), newStatus(f, stdout), newPod(f, stdout), newDemo(f, stdout))
	return root
}

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
}

func newUp(f *flags, out io.Writer) *cobra.Command {
	hosts := 3
	var demo, exit, kubernetes bool
	var kubeBin string
	var net lab.Options
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Start the lab and keep it running until Ctrl-C",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkUp(hosts, net); err != nil {
				return err
			}
			ctx, cancel := signalContext()
			defer cancel()
			if kubernetes && kubeBin == "" {
				dir, err := kubeapi.BinDir()
				if err != nil {
					return fmt.Errorf("--kubernetes: %w (or pass --kube-bin-dir)", err)
				}
				kubeBin = dir
			}
			o := net
			o.Name, o.Dir, o.BinDir, o.Hosts, o.Out, o.Kubernetes, o.KubeBin = f.name, f.dir, f.binDir, hosts, out, kubernetes, kubeBin
			l, err := lab.Up(ctx, o)
			if err != nil {
				return err
			}
			defer l.Shutdown()
			fmt.Fprintf(out, "\nThe lab is up. In another shell:\n  export ETCD_ENDPOINTS=%s\n", l.State.EtcdEndpoint)
			if kubernetes {
				fmt.Fprintf(out, "  export KUBECONFIG=%s\n  %s/kubectl get nodes\n", l.State.Kube.Kubeconfig, kubeBin)
			}
			fmt.Fprintf(out, "  calicoctl get nodes\n  calico-lab pod add host1 mypod\n  calico-lab status\nCtrl-C here (or calico-lab down) removes everything.\n")
			if demo {
				run := l.Demo
				if kubernetes {
					run = l.KubeDemo
				}
				if err := run(ctx); err != nil {
					return err
				}
				if exit {
					fmt.Fprintln(out, "\nDemo done; removing the lab.")
					return nil
				}
				fmt.Fprintln(out, "\nDemo done; the lab stays up until Ctrl-C.")
			}
			<-ctx.Done()
			fmt.Fprintln(out, "\nShutting the lab down")
			return nil
		},
	}
	cmd.Flags().IntVar(&hosts, "hosts", hosts, "number of hosts")
	cmd.Flags().BoolVar(&demo, "demo", false, "run the demo once the lab is up")
	cmd.Flags().BoolVar(&exit, "exit", false, "with --demo: remove the lab when the demo ends")
	cmd.Flags().BoolVar(&kubernetes, "kubernetes", false, "also run Kubernetes: kube-apiserver on the lab's etcd, kubelet and containerd on every host, calico-kube-controllers")
	cmd.Flags().StringVar(&kubeBin, "kube-bin-dir", "", "directory holding kube-apiserver, kubelet, kubectl, ... (default: built by deploy/kube/build.sh)")
	cmd.Flags().IntVar(&net.Subnets, "subnets", 1, "spread the hosts over this many subnets, routed by the bridge namespace")
	cmd.Flags().BoolVar(&net.IPv6, "ipv6", false, "give hosts and pods IPv6 addresses too, and an IPv6 default pool")
	cmd.Flags().BoolVar(&net.NoBGP, "no-bgp", false, "run no calico-bgpd (pods reach other hosts only through VXLAN)")
	cmd.Flags().StringVar(&net.VXLAN, "vxlan", "", "vxlanMode of the default pools: Never (default), Always or CrossSubnet")
	cmd.Flags().IntVar(&net.EtcdMembers, "etcd-members", 1, "run etcd as a cluster of this many members, each in a namespace of its own")
	cmd.Flags().StringVar(&net.PoolCIDR, "pool-cidr", "", "the default IPv4 pool (CALICO_IPV4POOL_CIDR; default "+lab.DemoPool+", "+lab.KubePool+" with --kubernetes; none for no pool)")
	return cmd
}

// checkUp refuses up's flag values that the lab would otherwise bend to
// fit (lab.Up checks --hosts).
func checkUp(hosts int, o lab.Options) error {
	switch {
	case o.Subnets < 1 || o.Subnets > hosts:
		return fmt.Errorf("--subnets must be between 1 and --hosts (%d), not %d", hosts, o.Subnets)
	case o.EtcdMembers < 1 || o.EtcdMembers > 9:
		return fmt.Errorf("--etcd-members must be between 1 and 9, not %d", o.EtcdMembers)
	}
	if _, err := defaultpools.EncapMode(o.VXLAN); err != nil {
		return fmt.Errorf("--vxlan: %w", err)
	}
	return nil
}

func newDown(f *flags, out io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "down",
		Short: "Remove everything the lab made, also after a crash",
		Args:  cobra.NoArgs,
		RunE:  func(*cobra.Command, []string) error { return lab.Down(f.dir, out) },
	}
}

func newStatus(f *flags, out io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show hosts, daemons, pods and BGP sessions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := lab.Open(f.dir, f.binDir, out)
			if err != nil {
				return err
			}
			l.Status(cmd.Context())
			l.PrintNodeStatus(cmd.Context())
			return nil
		},
	}
}

func newPod(f *flags, out io.Writer) *cobra.Command {
	ns := "default"
	pod := &cobra.Command{Use: "pod", Short: "Add or delete pods through the CNI plugin, as kubelet does"}
	add := &cobra.Command{
		Use:   "add HOST NAME",
		Short: "Create a pod namespace on HOST and run CNI ADD for it",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := openRunning(f, out)
			if err != nil {
				return err
			}
			p, err := l.AddPod(cmd.Context(), args[0], ns, args[1])
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "pod %s/%s on %s: %s (netns %s)\n", p.Namespace, p.Name, args[0], p.IP, p.NetNS)
			return nil
		},
	}
	del := &cobra.Command{
		Use:   "del HOST NAME",
		Short: "Run CNI DEL for a pod and remove its namespace",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := openRunning(f, out)
			if err != nil {
				return err
			}
			if err := l.DelPod(cmd.Context(), args[0], ns, args[1]); err != nil {
				return err
			}
			fmt.Fprintf(out, "pod %s/%s deleted\n", ns, args[1])
			return nil
		},
	}
	for _, c := range []*cobra.Command{add, del} {
		c.Flags().StringVarP(&ns, "namespace", "n", ns, "the pod's namespace")
	}
	pod.AddCommand(add, del)
	return pod
}

func openRunning(f *flags, out io.Writer) (*lab.Lab, error) {
	l, err := lab.Open(f.dir, f.binDir, out)
	if err != nil {
		return nil, err
	}
	if !l.State.Running() {
		return nil, fmt.Errorf("the lab in %s is not running (its up process is gone): run calico-lab down, then up", f.dir)
	}
	return l, nil
}

func newDemo(f *flags, out io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "demo",
		Short: "Walk through pools, pods, BGP and policy on the running lab",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := openRunning(f, out)
			if err != nil {
				return err
			}
			return l.Demo(cmd.Context())
		},
	}
}
