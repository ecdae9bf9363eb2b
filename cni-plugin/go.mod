module github.com/calico-etcd/calico/cni-plugin

go 1.26.0

require github.com/calico-etcd/calico/libcalico v0.0.0

replace github.com/calico-etcd/calico/libcalico => ../libcalico
