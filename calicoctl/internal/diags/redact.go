package diags

import (
	"bytes"
	"regexp"
)

// Redacted replaces every secret Redact finds.
const Redacted = "<redacted>"

// secretName matches the names of settings that hold secrets:
// etcdPassword, ETCD_PASSWORD, password, tokens, private keys. isRef
// keeps those that only say where a secret is (etcdKeyFile,
// secretKeyRef).
const secretName = `([A-Za-z0-9_.-]*(?i:password|passwd|token|private_?key|secret)[A-Za-z0-9_.-]*)`

var (
	// pemKeyRe is a PEM private key block (RSA, EC, PKCS#8, encrypted).
	pemKeyRe = regexp.MustCompile(`-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----[\s\S]*?-----END [A-Z0-9 ]*PRIVATE KEY-----`)
	// jsonSecretRe is "name": "value" in JSON.
	jsonSecretRe = regexp.MustCompile(`(")` + secretName + `("\s*:\s*)"(?:[^"\\]|\\.)*"`)
	// lineSecretRe is name: value (YAML, also in a list: - name: value),
	// name=value (env, INI) or --name=value at the start of a line.
	lineSecretRe = regexp.MustCompile(`(?m)^([ \t]*(?:-[ \t]+|--?)?)` + secretName + `([ \t]*[:=][ \t]*)([^\s{\[].*?)[ \t\r]*$`)
	// argSecretRe is --name=value or --name value on a command line.
	argSecretRe = regexp.MustCompile(`(^|[ \t])(--?)` + secretName + `(=|[ \t]+)(\S+)`)
	// refNameRe names where a secret is, not the secret.
	refNameRe = regexp.MustCompile(`(?i)(file|path|ref|dir)$`)
)

// Redact masks the secrets a diagnostics file may hold: PEM private keys,
// and the values of settings named like a password, token, private key or
// secret, in JSON, YAML, env and INI files and command lines. Settings
// that name a file or a reference (etcdKeyFile, secretKeyRef) are kept:
// they say where a secret is, not what it is.
func Redact(data []byte) []byte {
	data = pemKeyRe.ReplaceAll(data, []byte("-----BEGIN ${1}PRIVATE KEY-----\n"+Redacted+"\n-----END ${1}PRIVATE KEY-----"))
	data = replaceValue(jsonSecretRe, data, 2, func(sub [][]byte) []byte {
		return join(sub[1], sub[2], sub[3], []byte(`"`+Redacted+`"`))
	})
	data = replaceValue(lineSecretRe, data, 2, func(sub [][]byte) []byte {
		return join(sub[1], sub[2], sub[3], []byte(Redacted))
	})
	return replaceValue(argSecretRe, data, 3, func(sub [][]byte) []byte {
		return join(sub[1], sub[2], sub[3], sub[4], []byte(Redacted))
	})
}

// replaceValue rewrites each match of re whose name (group nameGroup) is
// not a reference and whose value is not already redacted.
func replaceValue(re *regexp.Regexp, data []byte, nameGroup int, rewrite func(sub [][]byte) []byte) []byte {
	return re.ReplaceAllFunc(data, func(m []byte) []byte {
		sub := re.FindSubmatch(m)
		if refNameRe.Match(sub[nameGroup]) || bytes.Contains(sub[len(sub)-1], []byte(Redacted)) {
			return m
		}
		return rewrite(sub)
	})
}

func join(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
