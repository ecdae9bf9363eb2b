package acceptance

import (
	"bytes"
	"context"
	"maps"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/client"
	"github.com/calico-etcd/calico/libcalico/ipam/ipamcheck"
	"github.com/calico-etcd/calico/testutil"
	"github.com/calico-etcd/calico/testutil/kubeapi"

	"github.com/calico-etcd/calico/cni-plugin/internal/nettest"
)

// kubeHost is a host with a real kube-apiserver the plugin reaches
// through a forwarder from the host namespace's loopback (the API server
// runs in the test's own namespace, on 127.0.0.1, over its own etcd).
type kubeHost struct {
	*hostEnv
	kube kubernetes.Interface
	fwd  *proxy
	// kubeconfig is the plugin's: the forwarded address, the admin token;
	// kubeconfigRoot reaches the API server from the test's namespace.
	kubeconfig, kubeconfigRoot string
	// etcdFwd reaches the host's etcd from the test's namespace.
	etcdFwd string
}

func newKubeHost(t *testing.T) *kubeHost {
	t.Helper()
	h := newHost(t)
	api := kubeapi.Start(t, testutil.StartEtcd(t).Endpoint)
	rc, err := clientcmd.BuildConfigFromFlags("", api.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	kube, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	k := &kubeHost{hostEnv: h, kube: kube, kubeconfigRoot: api.Kubeconfig,
		etcdFwd: newProxy(t, net.Listen, h.dialIn, strings.TrimPrefix(h.etcd.Endpoint, "http://")).Addr()}
	k.fwd = newProxy(t, h.listenIn, net.Dial, strings.TrimPrefix(api.URL, "https://"))
	k.kubeconfig = h.dir + "/kubeconfig"
	cfg, err := clientcmd.LoadFromFile(api.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cfg.Clusters {
		c.Server = "https://" + k.fwd.Addr()
	}
	if err := clientcmd.WriteToFile(*cfg, k.kubeconfig); err != nil {
		t.Fatal(err)
	}
	return k
}

// list is the v3.0 manifest's conflist: Kubernetes mode, policy k8s.
func (k *kubeHost) list(extra map[string]any) *libcni.NetworkConfigList {
	conf := map[string]any{
		"kubernetes": map[string]any{"kubeconfig": k.kubeconfig},
		"policy":     map[string]any{"type": "k8s"},
	}
	maps.Copy(conf, extra)
	return k.hostEnv.list(netConf{extraConf: conf})
}

// namespace makes a namespace and its default service account (no
// controller-manager runs to make it).
func (k *kubeHost) namespace(name string, annotations map[string]string) {
	k.t.Helper()
	ctx := context.Background()
	if _, err := k.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: annotations}}, metav1.CreateOptions{}); err != nil {
		k.t.Fatal(err)
	}
	if _, err := k.kube.CoreV1().ServiceAccounts(name).Create(ctx, &corev1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
		k.t.Fatal(err)
	}
}

func (k *kubeHost) pod(ns, name string, labels, annotations map[string]string, mod ...func(*corev1.Pod)) {
	k.t.Helper()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels, Annotations: annotations},
		Spec: corev1.PodSpec{NodeName: nodeName, AutomountServiceAccountToken: new(bool),
			Containers: []corev1.Container{{Name: "c", Image: "test"}}},
	}
	for _, m := range mod {
		m(p)
	}
	if _, err := k.kube.CoreV1().Pods(ns).Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
		k.t.Fatal(err)
	}
}

// A pod added in Kubernetes mode gets an endpoint with the pod's labels,
// its namespace's and service account's profiles and its named ports,
// and no network profile is made; DEL leaves nothing behind. The host's
// calico-cni-agent serves it (the other tests of the mode run directly).
func TestKubernetesModeEndpointFromPod(t *testing.T) {
	k := newKubeHost(t)
	a := k.startAgent()
	k.addPool("pool4", poolV4, 26)
	k.namespace("prod", nil)
	if _, err := k.kube.CoreV1().ServiceAccounts("prod").Create(context.Background(), &corev1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{Name: "web-sa"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	k.pod("prod", "web-1", map[string]string{"app": "web", "tier": "front"}, nil, func(p *corev1.Pod) {
		p.Spec.ServiceAccountName = "web-sa"
		p.Spec.Containers[0].Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}, {ContainerPort: 9000}}
	})
	l := k.list(nil)
	p := k.newPod("k8s00001", "prod/web-1")
	k.mustAdd(l, p)
	ping(t, p, nettest.HostIPv4.String())

	ctx := context.Background()
	w, err := k.c.WorkloadEndpoints().Get(ctx, "prod", "node1-k8s-web--1-eth0")
	if err != nil {
		t.Fatal(err)
	}
	wantLabels := map[string]string{"app": "web", "tier": "front", "projectcalico.org/namespace": "prod",
		"projectcalico.org/orchestrator": "k8s", "projectcalico.org/serviceaccount": "web-sa"}
	if !maps.Equal(w.Labels, wantLabels) {
		t.Errorf("labels %v, want %v", w.Labels, wantLabels)
	}
	if !slices.Equal(w.Spec.Profiles, []string{"kns.prod", "ksa.prod.web-sa"}) || w.Spec.ServiceAccountName != "web-sa" {
		t.Errorf("profiles %v, service account %q", w.Spec.Profiles, w.Spec.ServiceAccountName)
	}
	if len(w.Spec.Ports) != 1 || w.Spec.Ports[0].Name != "http" || w.Spec.Ports[0].Port != 8080 {
		t.Errorf("ports %+v, want only http 8080", w.Spec.Ports)
	}
	if _, err := k.c.Profiles().Get(ctx, "", netName); err == nil {
		t.Errorf("network profile %s made in Kubernetes mode", netName)
	}
	if err := k.check(l, p); err != nil {
		t.Errorf("CHECK: %v", err)
	}
	k.mustDel(l, p)
	k.assertClean()
	if !a.served("ADD", "k8s00001") || !a.served("DEL", "k8s00001") {
		t.Errorf("the agent did not serve the pod:\n%s", a.log())
	}
}

// The pod's IPAM annotations: pools (the pod's over its namespace's),
// fixed addresses through IPAM, addresses without IPAM and floating IPs
// (both only when enabled).
func TestKubernetesModeAnnotations(t *testing.T) {
	k := newKubeHost(t)
	k.addPool("pool4", poolV4, 26)
	k.addPool("other", "10.66.0.0/16", 26)
	k.namespace("ns-pools", map[string]string{"cni.projectcalico.org/ipv4pools": `["pool4"]`})
	k.pod("ns-pools", "from-ns", nil, nil)
	k.pod("ns-pools", "from-pod", nil, map[string]string{"cni.projectcalico.org/ipv4pools": `["other"]`})
	k.namespace("fixed", nil)
	k.pod("fixed", "ipaddrs", nil, map[string]string{"cni.projectcalico.org/ipAddrs": `["10.65.7.7"]`})
	k.pod("fixed", "noipam", nil, map[string]string{"cni.projectcalico.org/ipAddrsNoIpam": `["10.99.0.9"]`})
	k.pod("fixed", "floating", nil, map[string]string{"cni.projectcalico.org/floatingIPs": `["192.0.2.10"]`})
	k.pod("fixed", "both", nil, map[string]string{"cni.projectcalico.org/ipAddrs": `["10.65.7.8"]`,
		"cni.projectcalico.org/ipAddrsNoIpam": `["10.99.0.8"]`})
	k.pod("fixed", "badjson", nil, map[string]string{"cni.projectcalico.org/ipAddrs": `10.65.7.9`})

	plain := k.list(nil)
	enabled := k.list(map[string]any{"feature_control": map[string]any{"ip_addrs_no_ipam": true, "floating_ips": true}})
	ctx := context.Background()
	endpoint := func(ns, pod string) *v3.WorkloadEndpoint {
		t.Helper()
		w, err := k.c.WorkloadEndpoints().Get(ctx, ns, v3.WorkloadEndpointName(nodeName, "k8s", pod, "eth0"))
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	var added []*pod
	add := func(l *libcni.NetworkConfigList, id, name string) *pod {
		t.Helper()
		p := k.newPod(id, name)
		k.mustAdd(l, p)
		added = append(added, p)
		return p
	}
	if a := add(plain, "ann00001", "ns-pools/from-ns").addr(false); !strings.HasPrefix(a, "10.65.") {
		t.Errorf("namespace pool annotation: got %s", a)
	}
	if a := add(plain, "ann00002", "ns-pools/from-pod").addr(false); !strings.HasPrefix(a, "10.66.") {
		t.Errorf("pod pool annotation: got %s", a)
	}
	if a := add(plain, "ann00003", "fixed/ipaddrs").addr(false); a != "10.65.7.7" {
		t.Errorf("ipAddrs: got %s", a)
	}

	for _, c := range []struct{ id, pod, want string }{
		{"ann00004", "fixed/noipam", "feature_control.ip_addrs_no_ipam is not enabled"},
		{"ann00005", "fixed/floating", "feature_control.floating_ips is not enabled"},
		{"ann00006", "fixed/both", "has both annotations"},
		{"ann00007", "fixed/badjson", "parsing annotation cni.projectcalico.org/ipAddrs"},
		{"ann00008", "fixed/nosuchpod", "pod not found: fixed/nosuchpod"},
	} {
		p := k.newPod(c.id, c.pod)
		err := k.add(plain, p)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ADD of %s: %v, want an error saying %q", c.pod, err, c.want)
		}
		if out, _ := k.ns.Output("ip", "-o", "link"); strings.Count(out, "cali") != len(added) {
			t.Errorf("ADD of %s left a veth:\n%s", c.pod, out)
		}
	}

	if a := add(enabled, "ann00009", "fixed/noipam").addr(false); a != "10.99.0.9" {
		t.Errorf("ipAddrsNoIpam: got %s", a)
	}
	if ips, _ := k.ic.IPsByHandle(ctx, netName+".ann00009"); len(ips) != 0 {
		t.Errorf("ipAddrsNoIpam address assigned in IPAM: %v", ips)
	}
	fl := add(enabled, "ann00010", "fixed/floating")
	if w := endpoint("fixed", "floating"); len(w.Spec.IPNATs) != 1 || w.Spec.IPNATs[0].ExternalIP != "192.0.2.10" ||
		w.Spec.IPNATs[0].InternalIP != fl.addr(false) {
		t.Errorf("floating IPs %+v", w.Spec.IPNATs)
	}
	for _, p := range added {
		k.mustDel(plain, p)
	}
	k.assertClean()
}

// An API server that does not answer fails the ADD with a message naming
// it, within the plugin's Kubernetes timeout, and leaves nothing behind.
func TestKubernetesModeAPIServerDown(t *testing.T) {
	k := newKubeHost(t)
	k.addPool("pool4", poolV4, 26)
	k.namespace("prod", nil)
	k.pod("prod", "web", nil, nil)
	l := k.list(nil)
	k.fwd.Block(true)
	start := time.Now()
	err := k.add(l, k.newPod("down0001", "prod/web"))
	if err == nil || !strings.Contains(err.Error(), "Kubernetes API server https://"+k.fwd.Addr()) {
		t.Errorf("ADD with the API server down: %v", err)
	}
	t.Logf("failed after %v: %v", time.Since(start).Round(time.Millisecond), err)
	k.assertClean()
	k.fwd.Block(false)
	p := k.newPod("down0002", "prod/web")
	k.mustAdd(l, p)
	k.mustDel(l, p)
	k.assertClean()
}

// With calico-kube-controllers running (the built binary): a pod added in
// Kubernetes mode, relabelled, keeps its endpoint's labels in step; its
// Kubernetes Node deleted, its endpoint and addresses go and ipam check
// is clean.
func TestKubernetesModeWithControllers(t *testing.T) {
	k := newKubeHost(t)
	k.addPool("pool4", poolV4, 26)
	k.namespace("prod", nil)
	ctx := context.Background()
	node, err := k.c.Nodes().Get(ctx, "", nodeName)
	if err != nil {
		t.Fatal(err)
	}
	node.Spec.OrchRefs = []v3.OrchRef{{Orchestrator: "k8s", NodeName: nodeName}}
	if _, err := k.c.Nodes().Update(ctx, node); err != nil {
		t.Fatal(err)
	}
	if _, err := k.kube.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	k.pod("prod", "web", map[string]string{"app": "web"}, nil)
	p := k.newPod("ctl00001", "prod/web")
	k.mustAdd(k.list(nil), p)

	ctl := startKubeControllers(t, k.kubeconfigRoot, "http://"+k.etcdFwd)
	defer ctl()
	pod, err := k.kube.CoreV1().Pods("prod").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod.Labels["app"] = "web2"
	if _, err := k.kube.CoreV1().Pods("prod").Update(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "endpoint relabelled", func() bool {
		w, err := k.c.WorkloadEndpoints().Get(ctx, "prod", "node1-k8s-web-eth0")
		return err == nil && w.Labels["app"] == "web2"
	})
	if err := k.kube.CoreV1().Nodes().Delete(ctx, nodeName, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "node's endpoint and addresses removed", func() bool {
		weps, _, err := k.c.WorkloadEndpoints().List(ctx, client.ListOptions{})
		allocs, err2 := k.ic.Allocations(ctx)
		return err == nil && err2 == nil && len(weps) == 0 && len(allocs) == 0
	})
	rep, err := ipamcheck.Check(ctx, k.ic, ipamcheck.Options{})
	if err != nil || !rep.OK() {
		t.Errorf("ipam check: %+v (%v)", rep, err)
	}
}

// startKubeControllers builds and runs calico-kube-controllers; the
// returned function stops it.
func startKubeControllers(t *testing.T, kubeconfig, etcdEndpoint string) func() {
	t.Helper()
	dir := t.TempDir()
	build := exec.Command("go", "build", "-o", dir+"/", "github.com/calico-etcd/calico/kube-controllers/cmd/calico-kube-controllers")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building calico-kube-controllers: %v\n%s", err, out)
	}
	var log bytes.Buffer
	cmd := exec.Command(dir + "/calico-kube-controllers")
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "ETCD_ENDPOINTS="+etcdEndpoint,
		"LEADER_ELECTION=false", "HEALTH_PORT=0", "PROMETHEUS_METRICS_PORT=0")
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("calico-kube-controllers log:\n%s", log.String())
		}
	}
}

func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
