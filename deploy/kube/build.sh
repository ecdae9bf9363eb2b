#!/usr/bin/env bash
# Builds the upstream Kubernetes programs the tests and the lab run
# (kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kubectl) from k8s.io/kubernetes
# through the Go module proxy, once per version, into a cache. Prints the
# directory that holds them.
#
#   deploy/kube/build.sh            build what is missing, print the directory
#   CALICO_KUBE_BIN_DIR=/dir ...    use another directory
set -euo pipefail
cd "$(dirname "$0")"
version=$(grep -oE 'k8s.io/kubernetes v[0-9][^ ]*' go.mod | head -1 | cut -d' ' -f2)
dir=${CALICO_KUBE_BIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/calico-etcd/kube-$version}
progs=(kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl)
mkdir -p "$dir"
exec 9>"$dir/.lock"
flock 9
missing=()
for p in "${progs[@]}"; do
	[ -x "$dir/$p" ] || missing+=("./cmd/$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "building Kubernetes $version: ${missing[*]} (once; cached in $dir)" >&2
	export PATH="$PATH:/usr/local/go/bin"
	tmp=$(mktemp -d "$dir/.build.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	GOWORK=off CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags='-s -w' -o "$tmp/" "${missing[@]}"
	for p in "$tmp"/*; do mv -f "$p" "$dir/"; done
fi
echo "$dir"
