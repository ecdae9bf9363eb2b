# One target per job, looping over the workspace modules (./... does not
# cross module boundaries).
MODULES := libcalico testutil felix confd bgpd calicoctl cni-plugin kube-controllers deploy/lab
BINARIES := felix/cmd/calico-felix confd/cmd/calico-confd bgpd/cmd/calico-bgpd \
	calicoctl/cmd/calicoctl cni-plugin/cmd/calico cni-plugin/cmd/calico-direct cni-plugin/cmd/calico-ipam \
	cni-plugin/cmd/calico-cni-agent \
	kube-controllers/cmd/calico-kube-controllers deploy/lab/cmd/calico-lab deploy/lab/cmd/labnet
GO ?= go
SHELL := /bin/bash
export PATH := $(PATH):/usr/local/go/bin
export GOFLAGS ?= -buildvcs=false
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
# Static binaries, as CNI plugins are shipped (any host's libc will do),
# without gRPC's x/net/trace, which no component serves and whose
# templates keep the linker from dropping unused methods.
BUILDTAGS ?= grpcnotrace
LDFLAGS := -X github.com/calico-etcd/calico/libcalico/buildinfo.Version=$(VERSION) \
	-X github.com/calico-etcd/calico/libcalico/buildinfo.GitCommit=$(COMMIT)
TESTFLAGS ?= -race -count=1 -timeout 20m
# -p 1: go test runs packages' binaries at once, and one package's
# benchmark would load the machine another is measuring.
BENCHFLAGS ?= -p 1 -run=^$$ -bench=. -benchtime=1x -count=1 -timeout 30m

.PHONY: build test bench soak fuzz lint fmt tidy clean install deps kube lab demo lab-k8s demo-k8s

deps:
	@bash .ci/install-deps

# kube: the upstream Kubernetes programs the tests and the lab run, built
# once per version from the Go module proxy into a cache (minutes the
# first time); the tests build them on demand too.
kube:
	@bash deploy/kube/build.sh

# lab: three hosts on an embedded etcd, until Ctrl-C (see docs/lab.md).
LAB_HOSTS ?= 3
lab: deps build
	bin/calico-lab up --hosts $(LAB_HOSTS)

# demo: the lab, the scripted walk-through, then everything removed.
demo: deps build
	bin/calico-lab up --hosts $(LAB_HOSTS) --demo --exit

# lab-k8s and demo-k8s: the same with Kubernetes (kube-apiserver on the lab's
# etcd, kubelet and containerd on every host, calico-kube-controllers).
lab-k8s: deps build kube
	bin/calico-lab up --hosts $(LAB_HOSTS) --kubernetes
demo-k8s: deps build kube
	bin/calico-lab up --hosts $(LAB_HOSTS) --kubernetes --demo --exit

build:
	@mkdir -p bin
	@for b in $(BINARIES); do \
		mod=$$(dirname $$(dirname $$b)); \
		echo "go build $$b"; \
		(cd $$mod && CGO_ENABLED=0 $(GO) build -tags "$(BUILDTAGS)" -ldflags "$(LDFLAGS)" -o $(CURDIR)/bin/$$(basename $$b) ./cmd/$$(basename $$b)) || exit 1; \
	done
	@echo "go build loopback (containernetworking/plugins, for the lab's containerd)"
	@cd deploy/lab && CGO_ENABLED=0 $(GO) build -o $(CURDIR)/bin/loopback github.com/containernetworking/plugins/plugins/main/loopback

# test runs every module's tests verbosely into .test.log, shows package
# results and failures, and ends with "N passed, N failed". The lab's
# packages (each a whole cluster in namespaces) run one at a time.
test:
	@rm -f .test.log; status=0; \
	for m in $(MODULES); do \
		echo "== test $$m"; \
		par=""; [ $$m = deploy/lab ] && par="-p 1"; \
		(cd $$m && $(GO) test $(TESTFLAGS) $$par -v ./... 2>&1) | tee -a .test.log | grep -E '^(ok|FAIL|panic:|\?)'; \
		[ $${PIPESTATUS[0]} -eq 0 ] || status=1; \
	done; \
	if [ $$status -ne 0 ]; then echo "== failures"; grep -E -A20 '^\s*--- FAIL|^panic:' .test.log | head -300; fi; \
	echo "$$(grep -cE '^\s*--- PASS' .test.log) passed, $$(grep -cE '^\s*--- FAIL' .test.log) failed"; \
	exit $$status

# soak: the fault-injection suite for SOAK_DURATION (default 10m): pod
# churn on 4 lab hosts while etcd is killed and felix and bgpd restart,
# with ping streams; prints leaks, duplicates, pings lost, stale rules.
# (make test runs it for 30s.)
SOAK_DURATION ?= 10m
soak: deps build
	cd deploy/lab && SOAK_DURATION=$(SOAK_DURATION) $(GO) test -count=1 -timeout 0 -v -run TestSoak ./soak/ 2>&1 | \
		grep -E '^(soak:|--- |PASS|FAIL|ok|\s+soak_test)'; exit $${PIPESTATUS[0]}

# fuzz runs every fuzz target for FUZZTIME (default 10s) each; CI runs it
# after the tests.
fuzz:
	@bash .ci/fuzz

# bench runs every module's benchmarks once and ends with one table:
# figures, ratio to the lower bound measured in the same run, goal.
bench:
	@rm -f .bench.log; status=0; \
	for m in $(MODULES); do \
		echo "== bench $$m"; \
		(cd $$m && $(GO) test $(BENCHFLAGS) ./... 2>&1) | tee -a .bench.log | grep -E '^(Benchmark|ok|FAIL|panic:)'; \
		[ $${PIPESTATUS[0]} -eq 0 ] || status=1; \
	done; \
	echo; bash .ci/bench-table .bench.log; exit $$status

# lint: gofmt, go vet and staticcheck (its version pinned here).
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
lint:
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@for m in $(MODULES); do (cd $$m && $(GO) vet ./...) || exit 1; done
	@for m in $(MODULES); do (cd $$m && $(GO) run $(STATICCHECK) ./...) || exit 1; done

fmt:
	gofmt -w $(MODULES)

tidy:
	@for m in $(MODULES); do (cd $$m && $(GO) mod tidy) || exit 1; done

# install: binaries, systemd units, sample configs and the CNI conflist.
# Sample configs go in as *.sample beside any existing config, never over it.
PREFIX ?= /usr/local
DESTDIR ?=
BINDIR := $(PREFIX)/bin
DOCDIR := $(PREFIX)/share/doc/calico-etcd
UNITDIR ?= /etc/systemd/system
CNIBINDIR ?= /opt/cni/bin
CNICONFDIR ?= /etc/cni/net.d
CONFDIR ?= /etc/calico
install: build
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(CONFDIR) $(DESTDIR)$(CNIBINDIR) $(DESTDIR)$(CNICONFDIR) $(DESTDIR)$(DOCDIR)
	install -m 0755 bin/calico-felix bin/calico-confd bin/calico-bgpd bin/calicoctl bin/calico-kube-controllers bin/calico-cni-agent bin/calico-lab $(DESTDIR)$(BINDIR)/
	install -m 0755 bin/calico bin/calico-direct bin/calico-ipam $(DESTDIR)$(CNIBINDIR)/
	@for u in deploy/systemd/*.service.in; do \
		out=$(DESTDIR)$(UNITDIR)/$$(basename $$u .in); \
		sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@DOCDIR@|$(DOCDIR)|g' $$u > $$out && chmod 0644 $$out && echo "installed $$out"; \
	done
	install -m 0600 deploy/config/calico.env $(DESTDIR)$(CONFDIR)/calico.env.sample
	install -m 0644 deploy/config/felix.cfg $(DESTDIR)$(CONFDIR)/felix.cfg.sample
	install -m 0600 deploy/config/calicoctl.cfg $(DESTDIR)$(CONFDIR)/calicoctl.cfg.sample
	install -m 0644 deploy/config/10-calico.conflist $(DESTDIR)$(CNICONFDIR)/10-calico.conflist.sample
	install -m 0644 deploy/config/10-calico-k8s.conflist $(DESTDIR)$(CNICONFDIR)/10-calico-k8s.conflist.sample
	install -m 0600 deploy/config/kube-controllers.env $(DESTDIR)$(CONFDIR)/kube-controllers.env.sample
	install -m 0644 deploy/config/kube-controllers-rbac.yaml $(DESTDIR)$(DOCDIR)/kube-controllers-rbac.yaml
	install -m 0644 docs/*.md $(DESTDIR)$(DOCDIR)/

clean:
	rm -rf bin
