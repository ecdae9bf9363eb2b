package v3

import (
	"encoding/json"
	"reflect"
	"testing"
)

func infraPool(name, cidr string) *IPPool {
	p := NewIPPool()
	p.Name = name
	p.Spec.CIDR = cidr
	return p
}

func TestIPPoolDefaults(t *testing.T) {
	tests := []struct {
		cidr, wantCIDR string
		wantBlock      int
	}{
		{"10.10.0.0/16", "10.10.0.0/16", 26},
		{"fd00:10:0::/112", "fd00:10::/112", 122},
		{"10.10.0.1/16", "10.10.0.1/16", 26}, // unmasked: left for Validate
		{"not-a-cidr", "not-a-cidr", 0},
	}
	for _, tt := range tests {
		p := infraPool("p", tt.cidr)
		p.Default()
		s := p.Spec
		if s.CIDR != tt.wantCIDR || s.BlockSize != tt.wantBlock {
			t.Errorf("%s: cidr %s block %d, want %s %d", tt.cidr, s.CIDR, s.BlockSize, tt.wantCIDR, tt.wantBlock)
		}
		if s.NodeSelector != "all()" || s.IPIPMode != IPIPModeNever || s.VXLANMode != VXLANModeNever {
			t.Errorf("%s: selector/modes not defaulted: %+v", tt.cidr, s)
		}
		if !reflect.DeepEqual(s.AllowedUses, []IPPoolAllowedUse{IPPoolAllowedUseWorkload, IPPoolAllowedUseTunnel}) {
			t.Errorf("%s: allowedUses %v", tt.cidr, s.AllowedUses)
		}
		if s.AssignmentMode == nil || *s.AssignmentMode != AssignmentModeAutomatic {
			t.Errorf("%s: assignmentMode %v", tt.cidr, s.AssignmentMode)
		}
	}

	// Set fields are kept, and defaulting twice changes nothing.
	p := infraPool("p", "10.1.0.0/16")
	p.Spec.BlockSize = 28
	p.Spec.NodeSelector = "zone == 'a'"
	p.Spec.IPIPMode = IPIPModeAlways
	p.Spec.AllowedUses = []IPPoolAllowedUse{IPPoolAllowedUseWorkload}
	p.Default()
	once, _ := json.Marshal(p)
	p.Default()
	twice, _ := json.Marshal(p)
	if string(once) != string(twice) {
		t.Errorf("Default not idempotent:\n%s\n%s", once, twice)
	}
	if p.Spec.BlockSize != 28 || p.Spec.NodeSelector != "zone == 'a'" || p.Spec.IPIPMode != IPIPModeAlways || len(p.Spec.AllowedUses) != 1 {
		t.Errorf("Default overwrote set fields: %+v", p.Spec)
	}
	// The v1-only fields are not part of v3.
	if _, err := DecodeJSON([]byte(`{"kind":"IPPool","apiVersion":"projectcalico.org/v3","metadata":{"name":"p"},"spec":{"cidr":"10.0.0.0/16","nat-outgoing":true}}`)); err == nil {
		t.Error("nat-outgoing accepted")
	}
}

func TestIPPoolValidation(t *testing.T) {
	tests := []struct {
		name   string
		mod    func(p *IPPool)
		field  string
		value  string
		reason string
	}{
		{"bad cidr", func(p *IPPool) { p.Spec.CIDR = "10.300.0.0/16" }, "IPPool.Spec.CIDR", "10.300.0.0/16", "IPPool CIDR must be a valid subnet"},
		{"bare ip", func(p *IPPool) { p.Spec.CIDR = "10.0.0.1" }, "IPPool.Spec.CIDR", "10.0.0.1", "IPPool CIDR must be a valid subnet"},
		{"no cidr", func(p *IPPool) { p.Spec.CIDR = "" }, "IPPool.Spec.CIDR", "", "IPPool CIDR must be specified"},
		{"v4 block too big", func(p *IPPool) { p.Spec.BlockSize = 19 }, "IPPool.Spec.BlockSize", "19", "IPv4 block size must be between 20 and 32"},
		{"v4 block too small", func(p *IPPool) { p.Spec.BlockSize = 33 }, "IPPool.Spec.BlockSize", "33", "IPv4 block size must be between 20 and 32"},
		{"v6 block", func(p *IPPool) { p.Spec.CIDR = "fd00::/64"; p.Spec.BlockSize = 115 }, "IPPool.Spec.BlockSize", "115", "IPv6 block size must be between 116 and 128"},
		{"v6 block over 128", func(p *IPPool) { p.Spec.CIDR = "fd00::/64"; p.Spec.BlockSize = 129 }, "IPPool.Spec.BlockSize", "129", "IPv6 block size must be between 116 and 128"},
		{"pool smaller than block", func(p *IPPool) { p.Spec.CIDR = "10.0.0.0/28" }, "IPPool.Spec.CIDR", "10.0.0.0/28",
			"IP pool size is too small for use with Calico IPAM. It must be equal to or greater than the block size."},
		{"not masked", func(p *IPPool) { p.Spec.CIDR = "10.0.0.1/16" }, "IPPool.Spec.CIDR", "10.0.0.1/16", "IPPool CIDR is not strictly masked"},
		{"link local v4", func(p *IPPool) { p.Spec.CIDR = "169.254.0.0/20" }, "IPPool.Spec.CIDR", "169.254.0.0/20",
			"IPPool CIDR overlaps with IPv4 Link Local range 169.254.0.0/16"},
		{"contains link local", func(p *IPPool) { p.Spec.CIDR = "169.0.0.0/8" }, "IPPool.Spec.CIDR", "169.0.0.0/8", "IPv4 Link Local"},
		{"link local v6", func(p *IPPool) { p.Spec.CIDR = "fe80::/64" }, "IPPool.Spec.CIDR", "fe80::/64",
			"IPPool CIDR overlaps with IPv6 Link Local range fe80::/10"},
		{"ipip on v6", func(p *IPPool) { p.Spec.CIDR = "fd00::/64"; p.Spec.IPIPMode = IPIPModeAlways }, "IPPool.Spec.IPIPMode", "Always",
			"IPIP is not supported on an IPv6 IP pool"},
		{"both encaps", func(p *IPPool) { p.Spec.IPIPMode = IPIPModeCrossSubnet; p.Spec.VXLANMode = VXLANModeAlways }, "IPPool.Spec.VXLANMode", "Always",
			"Cannot enable both VXLAN and IPIP on the same IPPool"},
		{"bad ipip mode", func(p *IPPool) { p.Spec.IPIPMode = "always" }, "IPPool.Spec.IPIPMode", "always", "must be one of Never, Always, CrossSubnet"},
		{"bad vxlan mode", func(p *IPPool) { p.Spec.VXLANMode = "Sometimes" }, "IPPool.Spec.VXLANMode", "Sometimes", "must be one of"},
		{"bad node selector", func(p *IPPool) { p.Spec.NodeSelector = "a ==" }, "IPPool.Spec.NodeSelector", "a ==", "invalid selector"},
		{"bad namespace selector", func(p *IPPool) { p.Spec.NamespaceSelector = "has(" }, "IPPool.Spec.NamespaceSelector", "has(", "invalid selector"},
		{"bad use", func(p *IPPool) { p.Spec.AllowedUses = []IPPoolAllowedUse{"Workload", "Pets"} }, "IPPool.Spec.AllowedUses", "Pets", "unknown use: Pets"},
		{"lb mixed", func(p *IPPool) { p.Spec.AllowedUses = []IPPoolAllowedUse{"LoadBalancer", "Workload"} }, "IPPool.Spec.AllowedUses",
			"[LoadBalancer Workload]", "LoadBalancer cannot be combined"},
		{"lb with encap", func(p *IPPool) {
			p.Spec.AllowedUses = []IPPoolAllowedUse{"LoadBalancer"}
			p.Spec.VXLANMode = VXLANModeAlways
		},
			"IPPool.Spec.AllowedUses", "[LoadBalancer]", "IPIP and VXLAN must be Never"},
		{"bad assignment mode", func(p *IPPool) { m := AssignmentMode("Sometimes"); p.Spec.AssignmentMode = &m }, "IPPool.Spec.AssignmentMode", "Sometimes", "must be one of"},
		{"bad name", func(p *IPPool) { p.Name = "Bad_Name" }, "Metadata.Name", "Bad_Name", "name must consist of lower case"},
		{"namespaced", func(p *IPPool) { p.Namespace = "default" }, "Metadata.Namespace", "default", "not namespaced"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := infraPool("pool-1", "10.0.0.0/16")
			tt.mod(p)
			infraWantErr(t, p.Validate(), tt.field, tt.value, tt.reason)
		})
	}

	valid := []func(p *IPPool){
		func(p *IPPool) {},
		func(p *IPPool) { p.Default() },
		func(p *IPPool) { p.Spec.CIDR = "10.0.0.0/28"; p.Spec.Disabled = true }, // disabled pools may be small
		func(p *IPPool) { p.Spec.CIDR = "10.0.0.0/28"; p.Spec.BlockSize = 30 },
		func(p *IPPool) { p.Spec.CIDR = "fd00:10::/112"; p.Spec.VXLANMode = VXLANModeAlways },
		func(p *IPPool) {
			p.Spec.IPIPMode = IPIPModeCrossSubnet
			p.Spec.VXLANMode = VXLANModeNever
			p.Spec.NATOutgoing = true
		},
		func(p *IPPool) { p.Spec.AllowedUses = []IPPoolAllowedUse{"LoadBalancer"} },
		func(p *IPPool) { p.Spec.BlockSize = 32; p.Spec.NodeSelector = "has(zone)" },
	}
	for i, mod := range valid {
		p := infraPool("pool-1", "10.0.0.0/16")
		mod(p)
		if err := p.Validate(); err != nil {
			t.Errorf("valid case %d: %v", i, err)
		}
	}
}

func TestValidateIPPoolUpdate(t *testing.T) {
	old := infraPool("p", "10.0.0.0/16")
	old.Default()

	changed := Clone(old)
	changed.Spec.CIDR = "10.1.0.0/16"
	infraWantErr(t, ValidateIPPoolUpdate(old, changed), "IPPool.Spec.CIDR", "10.1.0.0/16", "IPPool CIDR cannot be modified")

	block := Clone(old)
	block.Spec.BlockSize = 24
	infraWantErr(t, ValidateIPPoolUpdate(old, block), "IPPool.Spec.BlockSize", "24", "IPPool BlockSize cannot be modified")

	same := Clone(old)
	same.Spec.NATOutgoing = true
	same.Spec.Disabled = true
	infraNoErr(t, ValidateIPPoolUpdate(old, same))

	// A non-canonical stored CIDR may be rewritten in canonical form, not the reverse.
	v6old := infraPool("p6", "fd00:0:0::/64")
	v6new := infraPool("p6", "fd00::/64")
	infraNoErr(t, ValidateIPPoolUpdate(v6old, v6new))
	infraWantErr(t, ValidateIPPoolUpdate(v6new, v6old), "IPPool.Spec.CIDR", "fd00:0:0::/64", "cannot be modified")

	// An unset block size means the default.
	unset := infraPool("p", "10.0.0.0/16")
	infraNoErr(t, ValidateIPPoolUpdate(unset, old))

	lb := Clone(old)
	lb.Spec.AllowedUses = []IPPoolAllowedUse{IPPoolAllowedUseLoadBalancer}
	wl := Clone(lb)
	wl.Spec.AllowedUses = []IPPoolAllowedUse{IPPoolAllowedUseWorkload}
	infraWantErr(t, ValidateIPPoolUpdate(lb, wl), "IPPool.Spec.AllowedUses", "[Workload]", "cannot be changed from LoadBalacer")

	infraNoErr(t, ValidateIPPoolUpdate(nil, old))
}

func TestCheckPoolOverlap(t *testing.T) {
	existing := []*IPPool{
		infraPool("a", "10.0.0.0/16"),
		infraPool("b", "fd00::/64"),
		infraPool("broken", "garbage"),
		nil,
	}
	p := infraPool("c", "10.0.128.0/24")
	infraWantErr(t, CheckPoolOverlap(p, existing), "IPPool.Spec.CIDR", "10.0.128.0/24",
		"IPPool(c) CIDR overlaps with IPPool(a) CIDR 10.0.0.0/16")

	outer := infraPool("d", "10.0.0.0/8")
	infraWantErr(t, CheckPoolOverlap(outer, existing), "IPPool.Spec.CIDR", "10.0.0.0/8", "IPPool(d) CIDR overlaps with IPPool(a)")

	// The pool itself (same name) is ignored: an update re-checks against the rest.
	self := infraPool("a", "10.0.0.0/20")
	infraNoErr(t, CheckPoolOverlap(self, existing))

	infraNoErr(t, CheckPoolOverlap(infraPool("e", "10.1.0.0/16"), existing))
	infraNoErr(t, CheckPoolOverlap(infraPool("f", "fd01::/64"), existing))
	infraWantErr(t, CheckPoolOverlap(infraPool("g", "fd00::/48"), existing), "IPPool.Spec.CIDR", "fd00::/48", "IPPool(b)")
	infraNoErr(t, CheckPoolOverlap(nil, existing))
}
