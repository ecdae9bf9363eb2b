package dataplane

import (
	"fmt"
	"maps"
	"net"
	"slices"
	"sync"
)

// Fake is an in-memory Dataplane for tests of its callers: namespaces are
// paths the test declares, interfaces are records, and any method can be
// made to fail.
type Fake struct {
	mu    sync.Mutex
	netns map[string]bool
	// pods maps "<netns>/<ifname>" to its interface; hosts maps a host
	// name to the same key.
	pods  map[string]*FakeIface
	hosts map[string]string
	macs  int

	// FailSetup, when set, makes Configure (and so Setup) fail with it,
	// removing the pair as Kernel does.
	FailSetup error
	// FailTeardown and FailCheck make those methods fail.
	FailTeardown, FailCheck error
}

// FakeIface is one workload interface the Fake holds.
type FakeIface struct {
	Request
}

var _ Dataplane = (*Fake)(nil)

// NewFake returns an empty Fake.
func NewFake() *Fake {
	return &Fake{netns: map[string]bool{}, pods: map[string]*FakeIface{}, hosts: map[string]string{}}
}

// AddNetNS declares a namespace path.
func (f *Fake) AddNetNS(path string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.netns[path] = true
}

// DeleteNetNS removes a namespace and, as the kernel does, its veths.
func (f *Fake) DeleteNetNS(path string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.netns, path)
	for k, i := range f.pods {
		if i.NetNS == path {
			f.remove(k)
		}
	}
}

// Interfaces returns copies of the interfaces, sorted by host name.
func (f *Fake) Interfaces() []FakeIface {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []FakeIface
	for _, h := range slices.Sorted(maps.Keys(f.hosts)) {
		out = append(out, *f.pods[f.hosts[h]])
	}
	return out
}

func (f *Fake) remove(key string) {
	if i, ok := f.pods[key]; ok {
		delete(f.hosts, i.HostIfName)
		delete(f.pods, key)
	}
}

func (f *Fake) prepareLocked(req *Request) error {
	if !f.netns[req.NetNS] {
		return fmt.Errorf("%w: %s", ErrNetNSNotFound, req.NetNS)
	}
	if _, ok := f.pods[req.NetNS+"/"+req.IfName]; ok {
		return fmt.Errorf("%w: %s", ErrInterfaceExists, req.IfName)
	}
	if key, ok := f.hosts[req.HostIfName]; ok {
		if f.pods[key].NetNS == req.NetNS {
			return fmt.Errorf("%w: through %s", ErrAlreadyAttached, req.HostIfName)
		}
		return fmt.Errorf("%w: %s", ErrHostInterfaceExists, req.HostIfName)
	}
	return nil
}

// Setup implements Dataplane.
func (f *Fake) Setup(req *Request) (*Result, error) {
	res, err := f.Create(req)
	if err != nil {
		return nil, err
	}
	if err := f.Configure(req); err != nil {
		return nil, err
	}
	return res, nil
}

// Create implements Dataplane.
func (f *Fake) Create(req *Request) (*Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.prepareLocked(req); err != nil {
		return nil, err
	}
	mac := req.PodMAC
	if mac == nil {
		f.macs++
		mac = net.HardwareAddr{0x0a, 0x58, 0, 0, byte(f.macs >> 8), byte(f.macs)}
	}
	key := req.NetNS + "/" + req.IfName
	made := *req
	made.PodMAC = mac
	f.pods[key] = &FakeIface{Request: made}
	f.hosts[req.HostIfName] = key
	return &Result{HostIfName: req.HostIfName, HostMAC: HostMAC, PodMAC: mac}, nil
}

// Configure implements Dataplane; FailSetup makes it fail (and remove
// the pair, as Kernel does).
func (f *Fake) Configure(req *Request) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := req.NetNS + "/" + req.IfName
	i, ok := f.pods[key]
	if !ok {
		return fmt.Errorf("no pair %s to configure", key)
	}
	if f.FailSetup != nil {
		f.remove(key)
		return f.FailSetup
	}
	if req.Families.Known() && FamiliesOf(req.Addrs) != req.Families {
		f.remove(key)
		return fmt.Errorf("%w: %v", ErrFamilies, req.Addrs)
	}
	i.Addrs = slices.Clone(req.Addrs)
	return nil
}

// Teardown implements Dataplane.
func (f *Fake) Teardown(netns, ifName string, detached func()) error {
	f.mu.Lock()
	if f.FailTeardown != nil {
		f.mu.Unlock()
		return f.FailTeardown
	}
	_, had := f.pods[netns+"/"+ifName]
	f.remove(netns + "/" + ifName)
	f.mu.Unlock()
	if had && detached != nil {
		detached()
	}
	return nil
}

// DeleteHostVeth implements Dataplane.
func (f *Fake) DeleteHostVeth(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if key, ok := f.hosts[name]; ok {
		f.remove(key)
	}
	return nil
}

// DeletePair implements Dataplane.
func (f *Fake) DeletePair(req *Request) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := req.NetNS + "/" + req.IfName
	if i, ok := f.pods[key]; ok && i.HostIfName == req.HostIfName {
		f.remove(key)
		return true, nil
	}
	return false, nil
}

// AddForeign puts an interface the plugin did not make into a namespace:
// Create then finds its name taken, and DeletePair leaves it.
func (f *Fake) AddForeign(netns, ifName string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := netns + "/" + ifName
	f.pods[key] = &FakeIface{Request: Request{NetNS: netns, IfName: ifName, HostIfName: "foreign:" + key}}
	f.hosts["foreign:"+key] = key
}

// Check implements Dataplane.
func (f *Fake) Check(req *Request) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.FailCheck != nil {
		return f.FailCheck
	}
	if !f.netns[req.NetNS] {
		return fmt.Errorf("%w: %s", ErrNetNSNotFound, req.NetNS)
	}
	i, ok := f.pods[req.NetNS+"/"+req.IfName]
	if !ok {
		return fmt.Errorf("pod interface %s missing", req.IfName)
	}
	if i.HostIfName != req.HostIfName {
		return fmt.Errorf("pod interface %s is not paired with host interface %s", req.IfName, req.HostIfName)
	}
	if req.PodMAC != nil && i.PodMAC.String() != req.PodMAC.String() {
		return fmt.Errorf("pod interface %s has MAC %s, want %s", req.IfName, i.PodMAC, req.PodMAC)
	}
	if !slices.Equal(i.Addrs, req.Addrs) {
		return fmt.Errorf("pod interface %s has addresses %v, want %v", req.IfName, i.Addrs, req.Addrs)
	}
	return nil
}
