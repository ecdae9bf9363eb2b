package diags

import (
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	const s = "hunter2"
	for _, tc := range []struct{ in, want string }{
		{"ETCD_PASSWORD=" + s, "ETCD_PASSWORD=<redacted>"},
		{"CALICO_ETCD_PASSWORD = " + s + "\n", "CALICO_ETCD_PASSWORD = <redacted>\n"},
		{"  etcdPassword: " + s, "  etcdPassword: <redacted>"},
		{`{"etcdPassword": "` + s + `", "etcdUsername": "root"}`, `{"etcdPassword": "<redacted>", "etcdUsername": "root"}`},
		{`{"password":"a\"` + s + `"}`, `{"password":"<redacted>"}`},
		{"calico-felix --etcd-password " + s + " -v", "calico-felix --etcd-password <redacted> -v"},
		{"token: " + s, "token: <redacted>"},
		{"peers:\n- password: " + s + "\n  name: x", "peers:\n- password: <redacted>\n  name: x"},
		{"-----BEGIN RSA PRIVATE KEY-----\nMIIE" + s + "\n-----END RSA PRIVATE KEY-----", "-----BEGIN RSA PRIVATE KEY-----\n<redacted>\n-----END RSA PRIVATE KEY-----"},
		// Where a secret is, not what it is, is kept.
		{"etcdKeyFile: /etc/calico/key.pem", "etcdKeyFile: /etc/calico/key.pem"},
		{"ETCD_KEY_FILE=/etc/calico/key.pem", "ETCD_KEY_FILE=/etc/calico/key.pem"},
		{"password:\n  secretKeyRef:\n    name: bgp\n    key: pw", "password:\n  secretKeyRef:\n    name: bgp\n    key: pw"},
		{`{"password":{"secretKeyRef":{"name":"bgp","key":"pw"}}}`, `{"password":{"secretKeyRef":{"name":"bgp","key":"pw"}}}`},
		{"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"},
		{"a non-secret value", "a non-secret value"},
		{"etcdPassword: <redacted>", "etcdPassword: <redacted>"},
	} {
		got := string(Redact([]byte(tc.in)))
		if got != tc.want {
			t.Errorf("Redact(%q)\n got  %q\n want %q", tc.in, got, tc.want)
		}
		if strings.Contains(tc.want, "<redacted>") && strings.Contains(got, s) {
			t.Errorf("%q kept the secret", tc.in)
		}
	}
}
