package v3

import (
	"encoding/json"
	"testing"
)

func TestPortJSON(t *testing.T) {
	for _, tc := range []struct {
		in, out string // out "" means decoding fails
		want    Port
	}{
		{`80`, `80`, SinglePort(80)},
		{`0`, `0`, SinglePort(0)},
		{`65535`, `65535`, SinglePort(65535)},
		{`"80"`, `80`, SinglePort(80)},
		{`"22:23"`, `"22:23"`, Port{MinPort: 22, MaxPort: 23}},
		{`"5:5"`, `5`, SinglePort(5)},
		{`"http"`, `"http"`, NamedPort("http")},
		{`"Web_1.x-y"`, `"Web_1.x-y"`, NamedPort("Web_1.x-y")},
		{` 443 `, `443`, SinglePort(443)},
		{`65536`, "", Port{}},
		{`-1`, "", Port{}},
		{`1.5`, "", Port{}},
		{`1e3`, "", Port{}},
		{`99999999999999999999999`, "", Port{}},
		{`"65536"`, "", Port{}},
		{`"10:5"`, "", Port{}},
		{`"1:99999"`, "", Port{}},
		{`"bad name!"`, "", Port{}},
		{`""`, "", Port{}},
		{`"ポート"`, "", Port{}},
		{`true`, "", Port{}},
		{`{}`, "", Port{}},
		{`[]`, "", Port{}},
		{`"unterminated`, "", Port{}},
	} {
		var p Port
		err := json.Unmarshal([]byte(tc.in), &p)
		if tc.out == "" {
			if err == nil {
				t.Errorf("%s: decoded to %+v, want an error", tc.in, p)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if p != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.in, p, tc.want)
		}
		if b, _ := json.Marshal(p); string(b) != tc.out {
			t.Errorf("%s: encoded as %s, want %s", tc.in, b, tc.out)
		}
	}
	// null leaves the value unset, like encoding/json does for numbers.
	p := SinglePort(7)
	if err := json.Unmarshal([]byte(`null`), &p); err != nil || p != SinglePort(7) {
		t.Errorf("null: got %+v, %v", p, err)
	}
	if _, err := PortFromRange(9, 8); err == nil {
		t.Error("PortFromRange(9, 8) gave no error")
	}
}

func TestProtocolJSON(t *testing.T) {
	for _, tc := range []struct {
		in, out string
		ports   bool
		reason  string // protocolReason
	}{
		{`"TCP"`, `"TCP"`, true, ""},
		{`"UDP"`, `"UDP"`, true, ""},
		{`"SCTP"`, `"SCTP"`, true, ""},
		{`"ICMP"`, `"ICMP"`, false, ""},
		{`"ICMPv6"`, `"ICMPv6"`, false, ""},
		{`"UDPLite"`, `"UDPLite"`, false, ""},
		{`6`, `6`, true, ""},
		{`"17"`, `17`, true, ""},
		{`132`, `132`, true, ""},
		{`255`, `255`, false, ""},
		{`0`, `0`, false, "protocol number invalid"},
		{`"tcp"`, `"tcp"`, true, "protocol name invalid"},
		{`"256"`, `"256"`, false, "protocol name invalid"},
		{`"ησ"`, `"ησ"`, false, "protocol name invalid"},
		{`""`, `""`, false, "protocol name invalid"},
		{`256`, "", false, ""},
		{`-1`, "", false, ""},
		{`6.5`, "", false, ""},
		{`{}`, "", false, ""},
	} {
		var p Protocol
		err := json.Unmarshal([]byte(tc.in), &p)
		if tc.out == "" {
			if err == nil {
				t.Errorf("%s: decoded to %+v, want an error", tc.in, p)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if b, _ := json.Marshal(p); string(b) != tc.out {
			t.Errorf("%s: encoded as %s, want %s", tc.in, b, tc.out)
		}
		if got := p.SupportsPorts(); got != tc.ports {
			t.Errorf("%s: SupportsPorts = %v", tc.in, got)
		}
		if got := protocolReason(p); got != tc.reason {
			t.Errorf("%s: protocolReason = %q, want %q", tc.in, got, tc.reason)
		}
	}
	if p := ProtocolFromString("icmpv6"); p.StrVal != ProtocolICMPv6 {
		t.Errorf("ProtocolFromString(icmpv6) = %+v", p)
	}
	if p := ProtocolFromInt(58); !p.is(ProtocolICMPv6, 58) || p.String() != "58" {
		t.Errorf("ProtocolFromInt(58) = %+v", p)
	}
}

func TestDSCP(t *testing.T) {
	for _, tc := range []struct {
		in    string
		val   uint8
		valid bool
	}{
		{`"AF11"`, 10, true},
		{`"ef"`, 46, true},
		{`46`, 46, true},
		{`63`, 63, true},
		{`64`, 64, false},
		{`"XX"`, 0, false},
	} {
		var d DSCP
		if err := json.Unmarshal([]byte(tc.in), &d); err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		if got := d.ToUint8(); got != tc.val {
			t.Errorf("%s: ToUint8 = %d, want %d", tc.in, got, tc.val)
		}
		if got := d.Validate() == nil; got != tc.valid {
			t.Errorf("%s: valid = %v, want %v", tc.in, got, tc.valid)
		}
	}
	if d := DSCPFromString("cs1"); d.StrVal != "CS1" || DSCPFromInt(8).ToUint8() != 8 {
		t.Errorf("DSCPFromString(cs1) = %+v", d)
	}
}

// FuzzRulePortProtocol checks that decoding ports and protocols never
// panics and that whatever decodes encodes and decodes back unchanged.
func FuzzRulePortProtocol(f *testing.F) {
	for _, s := range []string{`80`, `"80"`, `"22:23"`, `"http"`, `65536`, `-1`, `"TCP"`, `6`, `"6"`,
		`256`, `null`, `""`, `"0:0"`, `"a:b"`, `1e400`, `"\u0000"`, `[1,"2:3","x"]`, `{"protocol":"UDP"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var p Port
		if json.Unmarshal(data, &p) == nil {
			b, err := json.Marshal(p)
			if err != nil {
				t.Fatalf("encoding %+v: %v", p, err)
			}
			var q Port
			if err := json.Unmarshal(b, &q); err != nil || q != p {
				t.Fatalf("port %s -> %+v -> %s -> %+v (%v)", data, p, b, q, err)
			}
			v := newValidator()
			rulePort(v, "P", p)
		}
		var pr Protocol
		if json.Unmarshal(data, &pr) == nil {
			b, err := json.Marshal(pr)
			if err != nil {
				t.Fatalf("encoding %+v: %v", pr, err)
			}
			var q Protocol
			if err := json.Unmarshal(b, &q); err != nil || q.String() != pr.String() {
				t.Fatalf("protocol %s -> %+v -> %s -> %+v (%v)", data, pr, b, q, err)
			}
			_ = protocolReason(pr)
			_ = pr.SupportsPorts()
		}
		var d DSCP
		if json.Unmarshal(data, &d) == nil {
			_ = d.Validate()
			_ = d.ToUint8()
		}
		var ports []Port
		_ = json.Unmarshal(data, &ports)
		var r Rule
		if json.Unmarshal(data, &r) == nil {
			ruleCheck(newValidator(), "R", &r)
		}
	})
}
