// Package k8s is the calico plugin's Kubernetes mode: it reads the pod an
// ADD is for (and its namespace's annotations) from the API server, as
// Calico's plugin does, with the kubeconfig and overrides of the network
// configuration. Only core/v1 is registered, so the plugin's start-up does
// not pay for every API group.
package k8s

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Config is where and how to reach the API server: the netconf's
// kubernetes.kubeconfig, with kubernetes.k8s_api_root or the policy
// section's k8s_* fields overriding it, as in Calico.
type Config struct {
	Kubeconfig string
	APIRoot    string
	Token      string
	ClientCert string
	ClientKey  string
	CA         string
}

// Enabled reports whether any API server is configured.
func (c Config) Enabled() bool { return c.Kubeconfig != "" || c.APIRoot != "" }

// Pod is what ADD needs of a pod.
type Pod struct {
	Pod *corev1.Pod
	// NamespaceAnnotations are the annotations of the pod's namespace.
	NamespaceAnnotations map[string]string
}

// ErrPodNotFound: the API server has no such pod.
var ErrPodNotFound = errors.New("pod not found")

// Client reads pods and namespaces.
type Client struct {
	rc *rest.RESTClient
	// Server is the API server's address, for messages.
	Server string
}

// NewClient builds a client for c; each request is bounded by timeout.
func NewClient(c Config, timeout time.Duration) (*Client, error) {
	overrides := &clientcmd.ConfigOverrides{}
	// Older configurations gave the API root with its /api/v1 path.
	if root := strings.Split(c.APIRoot, "/api/")[0]; root != "" {
		overrides.ClusterInfo.Server = root
	}
	overrides.AuthInfo.Token = c.Token
	overrides.AuthInfo.ClientCertificate = c.ClientCert
	overrides.AuthInfo.ClientKey = c.ClientKey
	overrides.ClusterInfo.CertificateAuthority = c.CA
	rules := &clientcmd.ClientConfigLoadingRules{ExplicitPath: c.Kubeconfig}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubernetes client config (kubeconfig %q): %w", c.Kubeconfig, err)
	}
	scheme := runtime.NewScheme()
	if err := corev1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	cfg.GroupVersion = &corev1.SchemeGroupVersion
	cfg.APIPath = "/api"
	cfg.NegotiatedSerializer = serializer.NewCodecFactory(scheme).WithoutConversion()
	cfg.Timeout = timeout
	cfg.UserAgent = "calico-cni"
	rc, err := rest.RESTClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return &Client{rc: rc, Server: cfg.Host}, nil
}

// Pod reads pod ns/name and, at the same time, the annotations of
// namespace ns. The error names the pod and the server; ErrPodNotFound
// when it does not exist.
func (c *Client) Pod(ctx context.Context, ns, name string) (*Pod, error) {
	nsObj := &corev1.Namespace{}
	nsErr := make(chan error, 1)
	go func() { nsErr <- c.rc.Get().Resource("namespaces").Name(ns).Do(ctx).Into(nsObj) }()
	pod := &corev1.Pod{}
	if err := c.rc.Get().Namespace(ns).Resource("pods").Name(name).Do(ctx).Into(pod); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("%w: %s/%s on the Kubernetes API server %s", ErrPodNotFound, ns, name, c.Server)
		}
		return nil, fmt.Errorf("reading pod %s/%s from the Kubernetes API server %s: %w", ns, name, c.Server, err)
	}
	if err := <-nsErr; err != nil {
		return nil, fmt.Errorf("reading namespace %s from the Kubernetes API server %s: %w", ns, c.Server, err)
	}
	return &Pod{Pod: pod, NamespaceAnnotations: nsObj.Annotations}, nil
}
