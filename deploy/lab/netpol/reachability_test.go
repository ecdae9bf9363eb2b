package netpol

import (
	"fmt"
	"strings"
)

// Peer matches pods by namespace and name; an empty field matches all,
// as in upstream's Peer.
type Peer struct {
	Namespace, Pod string
}

func (p Peer) matches(pod string) bool {
	ns, name, _ := strings.Cut(pod, "/")
	return (p.Namespace == "" || p.Namespace == ns) && (p.Pod == "" || p.Pod == name)
}

// Reachability is the expected connectivity between every ordered pair of
// pods ("ns/name"), as upstream's Reachability: start from a default and
// carve out what the policies should change.
type Reachability struct {
	pods []string
	want map[[2]string]bool
}

// NewReachability expects every pair to be connected (or not).
func NewReachability(pods []string, connected bool) *Reachability {
	r := &Reachability{pods: pods, want: map[[2]string]bool{}}
	for _, from := range pods {
		for _, to := range pods {
			r.want[[2]string{from, to}] = connected
		}
	}
	return r
}

// Expect sets one pair.
func (r *Reachability) Expect(from, to string, connected bool) {
	k := [2]string{from, to}
	if _, ok := r.want[k]; !ok {
		panic(fmt.Sprintf("no pair %s -> %s in the model", from, to))
	}
	r.want[k] = connected
}

// ExpectPeer sets every pair whose client matches from and server to.
func (r *Reachability) ExpectPeer(from, to Peer, connected bool) {
	for _, f := range r.pods {
		for _, t := range r.pods {
			if from.matches(f) && to.matches(t) {
				r.want[[2]string{f, t}] = connected
			}
		}
	}
}

// ExpectAllIngress sets every pair into pod.
func (r *Reachability) ExpectAllIngress(pod string, connected bool) {
	ns, name, _ := strings.Cut(pod, "/")
	r.ExpectPeer(Peer{}, Peer{Namespace: ns, Pod: name}, connected)
}

// ExpectAllEgress sets every pair out of pod.
func (r *Reachability) ExpectAllEgress(pod string, connected bool) {
	ns, name, _ := strings.Cut(pod, "/")
	r.ExpectPeer(Peer{Namespace: ns, Pod: name}, Peer{}, connected)
}

// wrong counts the pairs, loopback aside, where observed differs.
func (r *Reachability) wrong(observed map[[2]string]bool) int {
	n := 0
	for k, want := range r.want {
		if got, ok := observed[k]; k[0] != k[1] && (!ok || got != want) {
			n++
		}
	}
	return n
}

// summary prints the expected, observed and comparison truth tables.
func (r *Reachability) summary(observed map[[2]string]bool) string {
	comparison := map[[2]string]bool{}
	for k, want := range r.want {
		got, ok := observed[k]
		comparison[k] = ok && got == want
	}
	return fmt.Sprintf("expected:\n\n%s\n\nobserved:\n\n%s\n\ncomparison:\n\n%s\n",
		r.table(r.want), r.table(observed), r.table(comparison))
}

// table lays out values with clients as rows and servers as columns:
// "." true, "X" false, "?" missing, "-" loopback (not probed).
func (r *Reachability) table(values map[[2]string]bool) string {
	var b strings.Builder
	b.WriteString("-\t" + strings.Join(r.pods, "\t"))
	for _, from := range r.pods {
		b.WriteString("\n" + from)
		for _, to := range r.pods {
			mark := "?"
			if v, ok := values[[2]string{from, to}]; from == to {
				mark = "-"
			} else if ok && v {
				mark = "."
			} else if ok {
				mark = "X"
			}
			b.WriteString("\t" + mark)
		}
	}
	return b.String()
}
