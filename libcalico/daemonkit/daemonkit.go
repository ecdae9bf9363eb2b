// Package daemonkit is what every daemon's main needs from the process:
// a logger at a level, a context ended by SIGTERM or SIGINT, SIGHUP as
// reload requests, and systemd notifications. It keeps the mains thin and
// alike.
package daemonkit

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	sddaemon "github.com/coreos/go-systemd/v22/daemon"
	"github.com/sirupsen/logrus"
)

// Logger returns a logrus logger writing to out at level ("info", ...);
// the error names the bad level.
func Logger(level string, out io.Writer) (*logrus.Entry, error) {
	lvl, err := logrus.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("log level %q: %w", level, err)
	}
	l := logrus.New()
	l.SetOutput(out)
	l.SetLevel(lvl)
	return logrus.NewEntry(l), nil
}

// SignalContext returns a context ended by SIGTERM or SIGINT.
func SignalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
}

// Reloads returns a channel that receives once per SIGHUP; signals that
// arrive while one is pending are merged into it.
func Reloads() <-chan struct{} {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	out := make(chan struct{}, 1)
	go func() {
		for range hup {
			select {
			case out <- struct{}{}:
			default:
			}
		}
	}()
	return out
}

// Notify sends a systemd notification ("READY=1", "STOPPING=1"); without
// $NOTIFY_SOCKET it does nothing.
func Notify(state string) { _, _ = sddaemon.SdNotify(false, state) }
