package v3

// ClusterInformation describes the cluster. Calico keeps one, named
// "default", created by the first writer.
type ClusterInformation struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata,omitempty"`

	Spec ClusterInformationSpec `json:"spec,omitempty"`
}

// ClusterInformationSpec holds the cluster-wide facts.
type ClusterInformationSpec struct {
	ClusterGUID   string `json:"clusterGUID,omitempty"`
	ClusterType   string `json:"clusterType,omitempty"`
	CalicoVersion string `json:"calicoVersion,omitempty"`
	// DatastoreReady false tells components to wait before using the datastore.
	DatastoreReady *bool  `json:"datastoreReady,omitempty"`
	Variant        string `json:"variant,omitempty"`
}

// Ready reports whether components may use the datastore: DatastoreReady
// unset or true. 'calicoctl datastore migrate lock' sets it false.
func (s *ClusterInformationSpec) Ready() bool { return s.DatastoreReady == nil || *s.DatastoreReady }

// NewClusterInformation returns an empty ClusterInformation with its type metadata set.
func NewClusterInformation() *ClusterInformation {
	return &ClusterInformation{TypeMeta: TypeMeta{Kind: KindClusterInformation, APIVersion: APIVersion}}
}

// Default sets only missing type metadata: Calico defaults no ClusterInformation field.
func (c *ClusterInformation) Default() { infraTypeMeta(&c.TypeMeta, KindClusterInformation) }

// Validate checks the metadata; Calico puts no rules on the spec.
func (c *ClusterInformation) Validate() error {
	v := newValidator()
	v.meta(KindClusterInformation, &c.ObjectMeta, false)
	return v.err()
}
