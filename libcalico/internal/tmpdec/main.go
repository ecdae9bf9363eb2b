package main

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	v3 "github.com/calico-etcd/calico/libcalico/api/v3"
)

var pool = []byte(`{"kind":"IPPool","apiVersion":"projectcalico.org/v3","metadata":{"name":"p","uid":"x","creationTimestamp":"2024-01-01T00:00:00Z"},"spec":{"cidr":"10.65.0.0/16","vxlanMode":"Never","ipipMode":"Never","natOutgoing":true,"blockSize":26,"nodeSelector":"all()","allowedUses":["Workload","Tunnel"]}}`)
var prof = []byte(`{"kind":"Profile","apiVersion":"projectcalico.org/v3","metadata":{"name":"net1","uid":"x","creationTimestamp":"2024-01-01T00:00:00Z"},"spec":{"ingress":[{"action":"Allow","source":{"selector":"has(x)"}}],"egress":[{"action":"Allow"}],"labelsToApply":{"a":"b"}}}`)

func main() {
	t := time.Now()
	if os.Args[1] == "iter" {
		v3.DecodeLenient("IPPool", pool)
		v3.DecodeLenient("Profile", prof)
		v3.DecodeLenient("WorkloadEndpoint", []byte(`{}`))
		v3.DecodeLenient("ClusterInformation", []byte(`{}`))
	} else {
		r, _ := v3.New("IPPool")
		json.Unmarshal(pool, r)
		r, _ = v3.New("Profile")
		json.Unmarshal(prof, r)
		r, _ = v3.New("WorkloadEndpoint")
		json.Unmarshal([]byte(`{}`), r)
		r, _ = v3.New("ClusterInformation")
		json.Unmarshal([]byte(`{}`), r)
	}
	fmt.Println(os.Args[1], time.Since(t))
}
