// Package ifaces watches network interfaces appear, change state and go
// away (netlink link updates), so the dataplane can program what depends
// on an interface as soon as it exists.
package ifaces

import (
	"context"
	"fmt"
	"net"

	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Update is a change to one interface.
type Update struct {
	Name    string
	Index   int
	Up      bool // administratively up
	Deleted bool
}

// Watch sends an Update for every existing interface and then for every
// change, until ctx ends or the subscription fails. ns selects the network
// namespace; nil means the current one.
func Watch(ctx context.Context, ns *netns.NsHandle, out chan<- Update, log *logrus.Entry) error {
	ch := make(chan netlink.LinkUpdate, 256)
	done := make(chan struct{})
	defer close(done)
	errCh := make(chan error, 1)
	opts := netlink.LinkSubscribeOptions{
		Namespace:    ns,
		ListExisting: true,
		ErrorCallback: func(err error) {
			select {
			case errCh <- err:
			default:
			}
		},
	}
	if err := netlink.LinkSubscribeWithOptions(ch, done, opts); err != nil {
		return fmt.Errorf("subscribing to link updates: %w", err)
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-errCh:
			return fmt.Errorf("link update subscription: %w", err)
		case u, ok := <-ch:
			if !ok {
				return fmt.Errorf("link update subscription closed")
			}
			attrs := u.Link.Attrs()
			upd := Update{
				Name:    attrs.Name,
				Index:   attrs.Index,
				Up:      attrs.Flags&net.FlagUp != 0,
				Deleted: u.Header.Type == unix.RTM_DELLINK,
			}
			log.WithFields(logrus.Fields{"iface": upd.Name, "up": upd.Up, "deleted": upd.Deleted}).Debug("link update")
			select {
			case out <- upd:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
}
