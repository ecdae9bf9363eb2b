package netpol

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
	"github.com/calico-etcd/calico/libcalico/client"
)

// target is what one matrix probes: a port and a protocol.
type target struct {
	port  int
	proto string // tcp or udp, as labnet probe takes it
}

var (
	tcp80 = target{80, "tcp"}
	tcp81 = target{81, "tcp"}
	udp80 = target{80, "udp"}
	udp81 = target{81, "udp"}
)

func (tg target) String() string { return fmt.Sprintf("%s/%d", strings.ToUpper(tg.proto), tg.port) }

const (
	probeWorkers = 16
	probeTimeout = time.Second
	// matrixWait bounds the retries of a whole matrix: enforcement is
	// eventually consistent.
	matrixWait = 20 * time.Second
	// calicoWait bounds waiting for calico-kube-controllers' writes.
	calicoWait = 20 * time.Second
	knpPrefix  = "knp.default."
)

// observe probes every pair but loopback once on tg, probeWorkers at a
// time.
func (c *cluster) observe(ctx context.Context, tg target) map[[2]string]bool {
	type job struct{ from, to *pod }
	jobs := make(chan job)
	obs := map[[2]string]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range probeWorkers {
		wg.Go(func() {
			for j := range jobs {
				ok := c.lab.Probe(ctx, j.from.netns, tg.proto, net.JoinHostPort(j.to.ip, strconv.Itoa(tg.port)), probeTimeout)
				mu.Lock()
				obs[[2]string{j.from.String(), j.to.String()}] = ok
				mu.Unlock()
			}
		})
	}
	for _, from := range c.pods {
		for _, to := range c.pods {
			if from != to {
				jobs <- job{from, to}
			}
		}
	}
	close(jobs)
	wg.Wait()
	return obs
}

// await probes the whole matrix on tg until it matches r or within has
// passed, and returns the last observation, its number of wrong pairs
// and the number of tries.
func (c *cluster) await(ctx context.Context, tg target, r *Reachability, within time.Duration) (map[[2]string]bool, int, int) {
	deadline := time.Now().Add(within)
	for try := 1; ; try++ {
		obs := c.observe(ctx, tg)
		wrong := r.wrong(obs)
		if wrong == 0 || time.Now().After(deadline) {
			return obs, wrong, try
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// tcase is one upstream case running on the shared lab.
type tcase struct {
	*cluster
	t   *testing.T
	ctx context.Context
}

// begin starts a case that probes targets (upstream's ports and
// protocols of initializeResources): it checks that every pair answers on
// each before the case changes anything, and restores the model after.
func begin(t *testing.T, targets ...target) *tcase {
	t.Helper()
	switch {
	case skip != "":
		t.Skip("SKIPPED: " + skip)
	case setupErr != nil:
		t.Fatalf("the lab did not come up: %v", setupErr)
	}
	c := &tcase{cluster: suite, t: t, ctx: context.Background()}
	if c.isDirty() {
		if err := c.reset(c.ctx); err != nil {
			t.Fatalf("restoring the model an earlier case left: %v", err)
		}
	}
	t.Cleanup(func() {
		if err := c.reset(context.Background()); err != nil {
			t.Errorf("restoring the model after the case: %v", err)
		}
	})
	for _, tg := range targets {
		r := c.reach()
		if obs, wrong, _ := c.await(c.ctx, tg, r, matrixWait); wrong > 0 {
			t.Fatalf("before the case, %d pairs do not answer on %s:\n%s", wrong, tg, r.summary(obs))
		}
	}
	return c
}

// reach expects every pair to be connected; the case carves out the rest.
func (c *tcase) reach() *Reachability { return NewReachability(c.names(), true) }

// validate probes the matrix on tg until it matches r, for up to
// matrixWait, and fails the case with the truth tables if it never does.
func (c *tcase) validate(tg target, r *Reachability) {
	c.t.Helper()
	start := time.Now()
	obs, wrong, tries := c.await(c.ctx, tg, r, matrixWait)
	if wrong > 0 {
		c.t.Fatalf("%s: %d wrong results in the reachability matrix, still after %d tries in %s:\n%s",
			tg, wrong, tries, time.Since(start).Round(time.Millisecond), r.summary(obs))
	}
	c.t.Logf("%s: reachability matrix as expected (try %d, %s)", tg, tries, time.Since(start).Round(time.Millisecond))
}

// ip is a model pod's IP ("ns/name").
func (c *tcase) ip(name string) string {
	p, ok := c.byName[name]
	if !ok {
		c.t.Fatalf("no pod %s in the model", name)
	}
	return p.ip
}

// create creates NetworkPolicy ns/name with spec, as upstream's
// CreatePolicy, and waits until calico-kube-controllers has written its
// Calico policy to etcd. spec is YAML whose first line's leading tabs are
// dropped from every line; namespace names in it are quoted, as YAML 1.1
// reads y as true.
func (c *tcase) create(ns, name, spec string) {
	c.t.Helper()
	c.mu.Lock()
	c.dirty, c.policyNS[ns] = true, true
	c.mu.Unlock()
	c.kubectlManifest("create", policyManifest(ns, name, spec))
	c.awaitCalicoPolicy(ns, name, "")
}

// update replaces the spec of ns/name, as upstream's UpdatePolicy, and
// waits until its Calico policy has changed.
func (c *tcase) update(ns, name, spec string) {
	c.t.Helper()
	old, err := c.calico.NetworkPolicies().Get(c.ctx, ns, knpPrefix+name)
	if err != nil {
		c.t.Fatalf("the Calico policy of %s/%s before the update: %v", ns, name, err)
	}
	c.kubectlManifest("replace", policyManifest(ns, name, spec))
	c.awaitCalicoPolicy(ns, name, old.ResourceVersion)
}

// awaitCalicoPolicy waits until etcd has the Calico policy of ns/name at
// a version other than notVersion.
func (c *tcase) awaitCalicoPolicy(ns, name, notVersion string) {
	c.t.Helper()
	deadline := time.Now().Add(calicoWait)
	for {
		p, err := c.calico.NetworkPolicies().Get(c.ctx, ns, knpPrefix+name)
		if err == nil && p.ResourceVersion != notVersion {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("calico-kube-controllers did not write %s/%s%s within %s (last error %v)", ns, knpPrefix, name, calicoWait, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// deleteAllPolicies deletes every NetworkPolicy in the model's
// namespaces, as upstream's cleanNetworkPolicies, and waits until etcd
// has none of their Calico policies.
func (c *tcase) deleteAllPolicies() {
	c.t.Helper()
	c.mu.Lock()
	policyNS := maps.Clone(c.policyNS)
	c.mu.Unlock()
	if err := c.cluster.deletePolicies(c.ctx, policyNS); err != nil {
		c.t.Fatal(err)
	}
	if err := c.awaitBaseline(c.ctx); err != nil {
		c.t.Fatal(err)
	}
}

// labelNamespace adds labels to ns, as upstream's AddNamespaceLabel, and
// waits until its Calico profile applies them.
func (c *tcase) labelNamespace(ns string, labels map[string]string) {
	c.t.Helper()
	c.touch(ns)
	c.kubectl(append([]string{"label", "--overwrite", "namespace", ns}, labelArgs(labels)...)...)
	c.awaitCalico(fmt.Sprintf("profile kns.%s applying %v", ns, labels), func() bool {
		p, err := c.calico.Profiles().Get(c.ctx, "", "kns."+ns)
		if err != nil {
			return false
		}
		for k, v := range labels {
			if got, ok := p.Spec.LabelsToApply["pcns."+k]; !ok || got != v {
				return false
			}
		}
		return true
	})
}

// labelPod adds labels to a model pod ("ns/name"), as upstream's
// AddPodLabels, and waits until its WorkloadEndpoint carries them.
func (c *tcase) labelPod(name string, labels map[string]string) {
	c.t.Helper()
	p := c.byName[name]
	c.touch(name)
	c.kubectl(append([]string{"label", "--overwrite", "pod", "-n", p.ns, p.name}, labelArgs(labels)...)...)
	c.awaitCalico(fmt.Sprintf("the endpoint of %s labelled %v", name, labels), func() bool {
		w, err := c.calico.WorkloadEndpoints().Get(c.ctx, p.ns, p.endpoint())
		if err != nil {
			return false
		}
		for k, v := range labels {
			if got, ok := w.Labels[k]; !ok || got != v {
				return false
			}
		}
		return true
	})
}

func (c *tcase) awaitCalico(what string, done func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(calicoWait)
	for !done() {
		if time.Now().After(deadline) {
			c.t.Fatalf("etcd does not show %s within %s", what, calicoWait)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (c *tcase) kubectl(args ...string) string {
	c.t.Helper()
	out, err := c.lab.Kubectl(c.ctx, args...)
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

// kubectlManifest runs kubectl verb -f on manifest.
func (c *tcase) kubectlManifest(verb, manifest string) {
	c.t.Helper()
	f, err := os.CreateTemp(c.tmp, "*.yaml")
	if err == nil {
		_, err = f.WriteString(manifest)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		c.t.Fatal(err)
	}
	defer os.Remove(f.Name())
	c.kubectl(verb, "-f", f.Name())
}

// policyManifest is NetworkPolicy ns/name with spec (see create).
func policyManifest(ns, name, spec string) string {
	lines := strings.Split(strings.Trim(spec, "\n"), "\n")
	tabs := lines[0][:len(lines[0])-len(strings.TrimLeft(lines[0], "\t"))]
	for i, l := range lines {
		lines[i] = "  " + strings.TrimPrefix(l, tabs)
	}
	return fmt.Sprintf("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: %q\n  namespace: %q\nspec:\n%s\n",
		name, ns, strings.Join(lines, "\n"))
}

func labelArgs(labels map[string]string) []string {
	var args []string
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		args = append(args, k+"="+labels[k])
	}
	return args
}

// endpoint is the name of the pod's WorkloadEndpoint.
func (p *pod) endpoint() string { return p.host + "-k8s-" + p.name + "-eth0" }

func (c *cluster) touch(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.touched[key] = true
	c.dirty = true
}

func (c *cluster) isDirty() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dirty
}

// reset brings the model back between cases: every NetworkPolicy in x, y
// and z deleted, the labels a case changed restored, and etcd showing
// both (no knp.default.* policy in x, y, z; endpoints' and profiles'
// labels as at the start).
func (c *cluster) reset(ctx context.Context) error {
	c.mu.Lock()
	dirty, touched, policyNS := c.dirty, slices.Sorted(maps.Keys(c.touched)), maps.Clone(c.policyNS)
	c.mu.Unlock()
	if !dirty {
		return nil
	}
	if err := c.deletePolicies(ctx, policyNS); err != nil {
		return err
	}
	for _, key := range touched {
		var err error
		if ns, name, isPod := strings.Cut(key, "/"); isPod {
			err = c.restoreLabels(ctx, []string{"pod", "-n", ns, name}, podLabels(name))
		} else {
			err = c.restoreLabels(ctx, []string{"namespace", key}, c.namespaceLabels(key))
		}
		if err != nil {
			return err
		}
	}
	if err := c.awaitBaseline(ctx); err != nil {
		return err
	}
	c.mu.Lock()
	c.touched, c.policyNS, c.dirty = map[string]bool{}, map[string]bool{}, false
	c.mu.Unlock()
	return nil
}

// deletePolicies deletes every NetworkPolicy in those of x, y and z that
// a case made policies in (known) or that etcd shows Calico policies of.
func (c *cluster) deletePolicies(ctx context.Context, known map[string]bool) error {
	for _, ns := range namespaces {
		if !known[ns] {
			pols, _, err := c.calico.NetworkPolicies().List(ctx, client.ListOptions{Namespace: ns})
			if err != nil {
				return err
			}
			if !slices.ContainsFunc(pols, func(p *v3.NetworkPolicy) bool { return strings.HasPrefix(p.Name, knpPrefix) }) {
				continue
			}
		}
		if _, err := c.lab.Kubectl(ctx, "delete", "networkpolicies", "--all", "-n", ns); err != nil {
			return err
		}
	}
	return nil
}

// restoreLabels sets the labels of the object kubectl names by obj to
// want exactly.
func (c *cluster) restoreLabels(ctx context.Context, obj []string, want map[string]string) error {
	out, err := c.lab.Kubectl(ctx, append([]string{"get", "-o", "jsonpath={.metadata.labels}"}, obj...)...)
	if err != nil {
		return err
	}
	have := map[string]string{}
	if strings.TrimSpace(out) != "" {
		if err := json.Unmarshal([]byte(out), &have); err != nil {
			return fmt.Errorf("labels of %v: %w", obj, err)
		}
	}
	var args []string
	for _, k := range slices.Sorted(maps.Keys(have)) {
		if _, ok := want[k]; !ok {
			args = append(args, k+"-")
		}
	}
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if have[k] != want[k] {
			args = append(args, k+"="+want[k])
		}
	}
	if len(args) == 0 {
		return nil
	}
	_, err = c.lab.Kubectl(ctx, append(append([]string{"label", "--overwrite"}, obj...), args...)...)
	return err
}

// awaitBaseline waits until etcd shows the model as at the start.
func (c *cluster) awaitBaseline(ctx context.Context) error {
	deadline := time.Now().Add(calicoWait)
	for {
		err := c.calicoBaseline(ctx)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("etcd not back to the model within %s: %w", calicoWait, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// calicoBaseline says how etcd differs from the model at the start.
func (c *cluster) calicoBaseline(ctx context.Context) error {
	for _, ns := range namespaces {
		pols, _, err := c.calico.NetworkPolicies().List(ctx, client.ListOptions{Namespace: ns})
		if err != nil {
			return err
		}
		for _, p := range pols {
			if strings.HasPrefix(p.Name, knpPrefix) {
				return fmt.Errorf("%s/%s is still there", ns, p.Name)
			}
		}
		prof, err := c.calico.Profiles().Get(ctx, "", "kns."+ns)
		if err != nil {
			return err
		}
		want := map[string]string{"pcns.projectcalico.org/name": ns}
		for k, v := range c.namespaceLabels(ns) {
			want["pcns."+k] = v
		}
		if !maps.Equal(prof.Spec.LabelsToApply, want) {
			return fmt.Errorf("profile kns.%s applies %v, not %v", ns, prof.Spec.LabelsToApply, want)
		}
	}
	for _, p := range c.pods {
		w, err := c.calico.WorkloadEndpoints().Get(ctx, p.ns, p.endpoint())
		if err != nil {
			return err
		}
		got := maps.Clone(w.Labels)
		maps.DeleteFunc(got, func(k, _ string) bool { return strings.HasPrefix(k, "projectcalico.org/") })
		if want := podLabels(p.name); !maps.Equal(got, want) {
			return fmt.Errorf("endpoint %s/%s has labels %v, not %v", p.ns, w.Name, got, want)
		}
	}
	return nil
}
