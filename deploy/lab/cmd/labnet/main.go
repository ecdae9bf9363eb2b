// Command labnet is the lab's test workload, in the spirit of Kubernetes'
// agnhost: one static binary that the lab packs into its pod images.
//
//	labnet pause                              sleep until SIGTERM (the pod sandbox image)
//	labnet serve [-ports 80,81]               answer TCP and UDP on each port
//	labnet probe -proto tcp|udp -to ip:port   exit 0 if the server answered, 1 if not
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: labnet pause | serve [-ports 80,81] | probe -proto tcp|udp -to ip:port [-timeout 1s]")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	switch args[0] {
	case "pause":
		<-ctx.Done()
		return 0
	case "serve":
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		ports := fs.String("ports", "80,81", "comma-separated ports to answer on, TCP and UDP")
		if err := fs.Parse(args[1:]); err != nil {
			return 2
		}
		if err := serve(ctx, strings.Split(*ports, ",")); err != nil {
			fmt.Fprintln(stderr, "labnet serve:", err)
			return 1
		}
		return 0
	case "probe":
		fs := flag.NewFlagSet("probe", flag.ContinueOnError)
		proto := fs.String("proto", "tcp", "tcp or udp")
		to := fs.String("to", "", "address:port")
		timeout := fs.Duration("timeout", time.Second, "how long to wait for an answer")
		if err := fs.Parse(args[1:]); err != nil || *to == "" {
			fmt.Fprintln(stderr, "labnet probe: -to address:port is required")
			return 2
		}
		if err := probe(*proto, *to, *timeout); err != nil {
			fmt.Fprintln(stdout, "no answer:", err)
			return 1
		}
		fmt.Fprintln(stdout, "answered")
		return 0
	}
	fmt.Fprintf(stderr, "labnet: unknown command %q\n", args[0])
	return 2
}

// serve answers every TCP connection with the host name and every UDP
// datagram with the same, on each port, until ctx ends.
func serve(ctx context.Context, ports []string) error {
	name, _ := os.Hostname()
	reply := []byte(name + "\n")
	for _, p := range ports {
		l, err := net.Listen("tcp", ":"+p)
		if err != nil {
			return err
		}
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				_, _ = c.Write(reply)
				c.Close()
			}
		}()
		u, err := net.ListenPacket("udp", ":"+p)
		if err != nil {
			return err
		}
		go func() {
			buf := make([]byte, 1500)
			for {
				_, from, err := u.ReadFrom(buf)
				if err != nil {
					return
				}
				_, _ = u.WriteTo(reply, from)
			}
		}()
	}
	<-ctx.Done()
	return nil
}

// probe reports whether a labnet server answers at to.
func probe(proto, to string, timeout time.Duration) error {
	switch proto {
	case "tcp":
		c, err := net.DialTimeout("tcp", to, timeout)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(timeout))
		_, err = c.Read(make([]byte, 64))
		return err
	case "udp":
		c, err := net.DialTimeout("udp", to, timeout)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(timeout))
		if _, err := c.Write([]byte("probe")); err != nil {
			return err
		}
		_, err = c.Read(make([]byte, 64))
		return err
	}
	return errors.New("unknown protocol " + proto)
}
