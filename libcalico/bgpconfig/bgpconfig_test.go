package bgpconfig

import (
	"reflect"
	"strings"
	"testing"
)

func sample() *Config {
	return &Config{
		Version: FormatVersion, NodeName: "a", RouterID: "172.31.255.11", ASNumber: 64512, ListenPort: 179,
		NodeIPv4: "172.31.255.11/24",
		Peers: []Peer{{
			Name: "Mesh_172_31_255_12", Address: "172.31.255.12", ASNumber: 64512, Type: PeerTypeMesh, RestartTime: 120,
			ExportRules: []FilterRule{{Filter: "f", CIDR: "10.0.0.0/8", MatchOperator: MatchIn, Action: ActionReject, AddCommunities: []string{"65000:100:1"}}},
		}},
		Pools:       []Pool{{CIDR: "10.65.0.0/16", Export: true}},
		Blocks:      []Block{{CIDR: "10.65.1.0/26", Export: true}},
		Communities: []PrefixCommunities{{CIDR: "10.65.0.0/16", Communities: []string{"65000:100"}}},
	}
}

func TestRoundTrip(t *testing.T) {
	c := sample()
	b, err := Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, c) {
		t.Fatalf("round trip:\n%+v\n%+v", got, c)
	}
	b2, _ := Marshal(got)
	if string(b) != string(b2) {
		t.Fatal("marshal is not canonical")
	}
}

func TestValidate(t *testing.T) {
	for name, mut := range map[string]func(*Config){
		"version":   func(c *Config) { c.Version = 9 },
		"router id": func(c *Config) { c.RouterID = "fd00::1" },
		"as":        func(c *Config) { c.ASNumber = 0 },
		"peer addr": func(c *Config) { c.Peers[0].Address = "x" },
		"dup peer":  func(c *Config) { c.Peers = append(c.Peers, c.Peers[0]) },
		"next hop":  func(c *Config) { c.Peers[0].NextHop = "other" },
		"rule":      func(c *Config) { c.Peers[0].ExportRules[0].Action = "Drop" },
		"community": func(c *Config) { c.Communities[0].Communities = []string{"70000:1"} },
		"pool":      func(c *Config) { c.Pools[0].CIDR = "10.0.0.0" },
	} {
		c := sample()
		mut(c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: invalid config accepted", name)
		}
	}
	if _, err := Unmarshal([]byte(`{"version":1,"bogus":true}`)); err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Errorf("unknown field error = %v", err)
	}
}

func TestParseCommunity(t *testing.T) {
	for s, want := range map[string]bool{"65000:100": false, "4200000000:1:2": true} {
		if _, large, err := ParseCommunity(s); err != nil || large != want {
			t.Errorf("%s: large=%v err=%v", s, large, err)
		}
	}
	for _, s := range []string{"1", "65536:1", "1:2:3:4", "a:b", "01:2"} {
		if _, _, err := ParseCommunity(s); err == nil {
			t.Errorf("%s accepted", s)
		}
	}
}
