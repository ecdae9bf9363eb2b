// Package daemon runs calico-kube-controllers: health and metrics
// servers, leader election on a Kubernetes Lease, then, while leading,
// the enabled controllers over one informer factory and one etcd view.
//
//	Run ─► health, metrics ─► leader election ─(leading)─► informers ─┐
//	                                                     etcd view ───┼─► controllers ─► etcd (libcalico)
//	                                                     compaction   ┘
//
// Losing the lease ends Run with an error, so that the process restarts
// as a standby and never writes beside the new leader.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sirupsen/logrus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/calico-etcd/calico/libcalico/backend/etcd"
	"github.com/calico-etcd/calico/libcalico/client"
	"github.com/calico-etcd/calico/libcalico/daemonkit"
	"github.com/calico-etcd/calico/libcalico/health"
	"github.com/calico-etcd/calico/libcalico/ipam"

	"github.com/calico-etcd/calico/kube-controllers/config"
	"github.com/calico-etcd/calico/kube-controllers/controllers"
	"github.com/calico-etcd/calico/kube-controllers/etcdview"
)

// Lease timing, as client-go's defaults for controllers.
const (
	leaseDuration = 15 * time.Second
	renewDeadline = 10 * time.Second
	retryPeriod   = 2 * time.Second
)

// ErrLostLeadership ends Run when another replica took the lease.
var ErrLostLeadership = errors.New("lost the leader lease")

// Run runs until ctx ends (nil) or leadership is lost (ErrLostLeadership).
// It tells systemd READY=1 once it serves health and joins the election
// (a standby is ready too), and STOPPING=1 as it ends.
func Run(ctx context.Context, cfg *config.Config, log *logrus.Entry) error {
	restCfg, err := restConfig(cfg.Kubeconfig)
	if err != nil {
		return err
	}
	kube, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	be, err := etcd.New(cfg.Datastore.EtcdConfig(cfg.DatastoreTimeout))
	if err != nil {
		return fmt.Errorf("connecting to etcd: %w", err)
	}
	defer be.Close()

	d := &daemon{cfg: cfg, log: log, kube: kube, be: be, agg: health.NewAggregator(), metrics: newMetrics()}
	d.agg.Register("leader-election", 0)
	d.agg.Report("leader-election", true, true)
	if err := d.serve(ctx); err != nil {
		return err
	}
	daemonkit.Notify("READY=1")
	defer daemonkit.Notify("STOPPING=1")
	if !cfg.LeaderElection {
		d.metrics.leader.Set(1)
		d.lead(ctx)
		return nil
	}
	lost := false
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock: &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Namespace: cfg.LeaseNamespace, Name: cfg.LeaseName},
			Client:     kube.CoordinationV1(),
			LockConfig: resourcelock.ResourceLockConfig{Identity: cfg.Identity},
		},
		LeaseDuration:   leaseDuration,
		RenewDeadline:   renewDeadline,
		RetryPeriod:     retryPeriod,
		ReleaseOnCancel: true,
		Name:            cfg.LeaseName,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				log.WithField("identity", cfg.Identity).Info("leading: starting controllers")
				d.metrics.leader.Set(1)
				d.lead(ctx)
			},
			OnStoppedLeading: func() {
				d.metrics.leader.Set(0)
				lost = ctx.Err() == nil
			},
			OnNewLeader: func(id string) {
				if id != cfg.Identity {
					log.WithField("leader", id).Info("standing by")
				}
			},
		},
	})
	if err != nil {
		return fmt.Errorf("leader election: %w", err)
	}
	le.Run(ctx)
	if lost {
		return ErrLostLeadership
	}
	return nil
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	var (
		c   *rest.Config
		err error
	)
	if kubeconfig != "" {
		c, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	} else {
		c, err = rest.InClusterConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("kubernetes API config (KUBECONFIG=%q): %w", kubeconfig, err)
	}
	c.QPS, c.Burst = 50, 100
	c.UserAgent = "calico-kube-controllers"
	return c, nil
}

type daemon struct {
	cfg     *config.Config
	log     *logrus.Entry
	kube    kubernetes.Interface
	be      *etcd.Client
	agg     *health.Aggregator
	metrics *metrics
}

// serve starts the health and metrics servers.
func (d *daemon) serve(ctx context.Context) error {
	if d.cfg.HealthAddr != "" {
		a, err := health.Serve(ctx, d.cfg.HealthAddr, d.agg.Handler(), d.log)
		if err != nil {
			return fmt.Errorf("health server: %w", err)
		}
		d.log.WithField("addr", a.String()).Info("serving /liveness and /readiness")
	}
	if d.cfg.MetricsAddr != "" {
		a, err := health.Serve(ctx, d.cfg.MetricsAddr, promhttp.HandlerFor(d.metrics.reg, promhttp.HandlerOpts{}), d.log)
		if err != nil {
			return fmt.Errorf("metrics server: %w", err)
		}
		d.log.WithField("addr", a.String()).Info("serving Prometheus metrics")
	}
	return nil
}

// lead runs the enabled controllers until ctx ends.
func (d *daemon) lead(ctx context.Context) {
	c := client.New(d.be)
	factory := informers.NewSharedInformerFactory(d.kube, 0)
	view := etcdview.New(d.be, d.log)
	deps := controllers.Deps{Log: d.log, View: view, Observer: d.metrics, ResyncPeriod: d.cfg.ReconcilerPeriod}
	var ctls []controllers.Controller
	for _, name := range d.cfg.Controllers {
		var (
			ctl controllers.Controller
			err error
		)
		switch name {
		case config.Policy:
			ctl, err = controllers.NewPolicy(deps, factory, c)
		case config.Namespace:
			ctl, err = controllers.NewNamespace(deps, factory, c)
		case config.ServiceAccount:
			ctl, err = controllers.NewServiceAccount(deps, factory, c)
		case config.WorkloadEndpoint:
			ctl, err = controllers.NewWorkloadEndpoint(deps, factory, c)
		case config.Node:
			var ic *ipam.Client
			if ic, err = ipam.New(d.be, d.log, ipam.Options{}); err == nil {
				ctl, err = controllers.NewNode(deps, factory, d.kube, c, ic)
			}
		}
		if err != nil {
			d.log.WithError(err).WithField("controller", name).Error("controller not started")
			continue
		}
		ctls = append(ctls, ctl)
		d.agg.Register(name, 0)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := view.Run(ctx); err != nil {
			d.log.WithError(err).Error("etcd view stopped")
		}
	})
	factory.Start(ctx.Done())
	for _, ctl := range ctls {
		wg.Go(func() { ctl.Run(ctx, d.cfg.Workers[ctl.Name()]) })
	}
	if d.cfg.CompactionPeriod > 0 {
		wg.Go(func() { compact(ctx, d.be.Raw(), d.cfg.CompactionPeriod, d.log) })
	}
	wg.Go(func() { d.report(ctx, view, ctls) })
	<-ctx.Done()
	factory.Shutdown()
	wg.Wait()
}

// report keeps health and gauges current.
func (d *daemon) report(ctx context.Context, view *etcdview.View, ctls []controllers.Controller) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		inSync := view.InSync()
		d.metrics.etcdInSync.Set(b2f(inSync))
		for _, c := range ctls {
			d.agg.Report(c.Name(), true, c.Ready())
			d.metrics.queue.WithLabelValues(c.Name()).Set(float64(c.QueueLen()))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
