// Package apiconfig loads datastore settings the way calicoctl does: a
// CalicoAPIConfig file, or environment variables when there is no file.
package apiconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/calico-etcd/calico/libcalico/backend/etcd"
)

// DefaultConfigFile is read when no file is named and it exists.
const DefaultConfigFile = "/etc/calico/calicoctl.cfg"

// DatastoreEtcdV3 is the only datastore type this project supports.
const DatastoreEtcdV3 = "etcdv3"

// Spec mirrors CalicoAPIConfig.spec.
type Spec struct {
	DatastoreType  string `json:"datastoreType,omitempty"`
	EtcdEndpoints  string `json:"etcdEndpoints,omitempty"`
	EtcdUsername   string `json:"etcdUsername,omitempty"`
	EtcdPassword   string `json:"etcdPassword,omitempty"`
	EtcdKeyFile    string `json:"etcdKeyFile,omitempty"`
	EtcdCertFile   string `json:"etcdCertFile,omitempty"`
	EtcdCACertFile string `json:"etcdCACertFile,omitempty"`
	// Kubeconfig and K8sAPIEndpoint are accepted so shared files parse;
	// the kubernetes datastore itself is rejected.
	Kubeconfig     string `json:"kubeconfig,omitempty"`
	K8sAPIEndpoint string `json:"k8sAPIEndpoint,omitempty"`
}

// CalicoAPIConfig is the file format.
type CalicoAPIConfig struct {
	APIVersion string          `json:"apiVersion,omitempty"`
	Kind       string          `json:"kind,omitempty"`
	Metadata   json.RawMessage `json:"metadata,omitempty"`
	Spec       Spec            `json:"spec"`
}

// Load reads file, or DefaultConfigFile when file is "" and it exists, or
// else the environment (ETCD_ENDPOINTS, ... with optional CALICO_ prefix).
func Load(file string) (*Spec, error) {
	explicit := file != ""
	if !explicit {
		file = DefaultConfigFile
	}
	data, err := os.ReadFile(file)
	switch {
	case err == nil:
		return parseFile(file, data)
	case !explicit && errors.Is(err, fs.ErrNotExist):
		return FromEnv(os.Getenv)
	default:
		return nil, fmt.Errorf("reading config file: %w", err)
	}
}

func parseFile(file string, data []byte) (*Spec, error) {
	j, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("config file %s: %w", file, err)
	}
	var c CalicoAPIConfig
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("config file %s: %w", file, err)
	}
	if c.Kind != "CalicoAPIConfig" {
		return nil, fmt.Errorf("config file %s: kind %q, want CalicoAPIConfig", file, c.Kind)
	}
	if err := c.Spec.validate(); err != nil {
		return nil, fmt.Errorf("config file %s: %w", file, err)
	}
	return &c.Spec, nil
}

// FromEnv builds a Spec from environment variables; getenv is os.Getenv
// in production.
func FromEnv(getenv func(string) string) (*Spec, error) {
	get := func(name string) string {
		if v := getenv("CALICO_" + name); v != "" {
			return v
		}
		return getenv(name)
	}
	s := &Spec{
		DatastoreType:  get("DATASTORE_TYPE"),
		EtcdEndpoints:  get("ETCD_ENDPOINTS"),
		EtcdUsername:   get("ETCD_USERNAME"),
		EtcdPassword:   get("ETCD_PASSWORD"),
		EtcdKeyFile:    get("ETCD_KEY_FILE"),
		EtcdCertFile:   get("ETCD_CERT_FILE"),
		EtcdCACertFile: get("ETCD_CA_CERT_FILE"),
	}
	if s.EtcdEndpoints == "" {
		s.EtcdEndpoints = "http://127.0.0.1:2379"
	}
	return s, s.validate()
}

func (s *Spec) validate() error {
	switch s.DatastoreType {
	case "", DatastoreEtcdV3:
		s.DatastoreType = DatastoreEtcdV3
	case "kubernetes":
		return errors.New("datastoreType 'kubernetes' is not supported: this suite stores data in etcd (use etcdv3)")
	default:
		return fmt.Errorf("error with field datastoreType = '%s' (must be etcdv3)", s.DatastoreType)
	}
	if len(s.Endpoints()) == 0 {
		return errors.New("no etcd endpoints: set spec.etcdEndpoints or ETCD_ENDPOINTS")
	}
	for _, ep := range s.Endpoints() {
		if !strings.HasPrefix(ep, "http://") && !strings.HasPrefix(ep, "https://") {
			return fmt.Errorf("error with field etcdEndpoints = '%s' (each endpoint must start with http:// or https://)", ep)
		}
	}
	return nil
}

// Endpoints splits the comma-separated endpoint list.
func (s *Spec) Endpoints() []string {
	var out []string
	for _, ep := range strings.Split(s.EtcdEndpoints, ",") {
		if ep = strings.TrimSpace(ep); ep != "" {
			out = append(out, ep)
		}
	}
	return out
}

// EtcdConfig turns the spec into the etcd backend's config.
func (s *Spec) EtcdConfig(timeout time.Duration) etcd.Config {
	return etcd.Config{
		Endpoints:  s.Endpoints(),
		KeyFile:    s.EtcdKeyFile,
		CertFile:   s.EtcdCertFile,
		CACertFile: s.EtcdCACertFile,
		Username:   s.EtcdUsername,
		Password:   s.EtcdPassword,
		Timeout:    timeout,
	}
}
