package chaos

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"
)

// echoNet is a network of two "nodes" on their own loopback IPs: node 1 is
// an echo server behind proxy 1, and node 0 dials it from its own IP.
type echoNet struct {
	net   *Network
	proxy string
	from  netip.Addr
}

func startEcho(t *testing.T) *echoNet {
	t.Helper()
	return startEchoWith(t, nil)
}

// startEchoWith is startEcho, with setup called on the network before its
// proxy listens.
func startEchoWith(t *testing.T, setup func(*Network)) *echoNet {
	t.Helper()
	ips := []netip.Addr{netip.MustParseAddr("127.0.254.11"), netip.MustParseAddr("127.0.254.12")}
	ln, err := net.Listen("tcp", netip.AddrPortFrom(ips[1], 0).String())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer func() { _ = c.Close() }()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	n := NewNetwork(ips, 1)
	if setup != nil {
		setup(n)
	}
	addr, err := n.Listen(1, "127.0.255.12:0", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		n.Close()
		_ = ln.Close()
		<-done
	})
	return &echoNet{net: n, proxy: addr.String(), from: ips[0]}
}

func (e *echoNet) dial(t *testing.T) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: e.from.AsSlice()}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", e.proxy)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// roundTrip writes msg and reads the echo; it fails if the echo is not
// back within wait.
func roundTrip(c net.Conn, msg []byte, wait time.Duration) error {
	if _, err := c.Write(msg); err != nil {
		return err
	}
	_ = c.SetReadDeadline(time.Now().Add(wait))
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if !bytes.Equal(got, msg) {
		return errors.New("echo differs")
	}
	return nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestProxySource(t *testing.T) {
	e := startEcho(t)
	addr := &net.TCPAddr{IP: e.from.AsSlice(), Port: 1234}
	if got := e.net.Source(addr); got != 0 {
		t.Errorf("Source(%v) = %d, want 0", addr, got)
	}
	if got := e.net.Source(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}); got != -1 {
		t.Errorf("Source(127.0.0.1) = %d, want -1", got)
	}
}

func TestProxyPassAndDelay(t *testing.T) {
	e := startEcho(t)
	c := e.dial(t)
	if err := roundTrip(c, []byte("hello"), 10*time.Second); err != nil {
		t.Fatalf("pass: %v", err)
	}
	e.net.Set(0, 1, Rule{Delay: 20 * time.Millisecond, Jitter: 20 * time.Millisecond})
	e.net.Set(1, 0, Rule{Delay: 20 * time.Millisecond})
	for i := range 20 {
		msg := bytes.Repeat([]byte{byte('a' + i)}, 1000*(i+1))
		if err := roundTrip(c, msg, 10*time.Second); err != nil {
			t.Fatalf("delay, message %d: %v", i, err)
		}
	}
}

func TestProxyBlackholeClosesOnHeal(t *testing.T) {
	e := startEcho(t)
	c := e.dial(t)
	if err := roundTrip(c, []byte("before"), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	e.net.Set(0, 1, Rule{Cut: Blackhole})
	if err := roundTrip(c, []byte("lost"), 300*time.Millisecond); !isTimeout(err) {
		t.Fatalf("through a blackhole: %v, want a timeout", err)
	}
	e.net.Heal()
	// The stream lost bytes: the next write makes the proxy close it.
	_, _ = c.Write([]byte("after"))
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if b, err := io.ReadAll(c); isTimeout(err) {
		t.Fatalf("old connection after heal: read %q, %v; want it closed", b, err)
	}
	// A new connection passes.
	if err := roundTrip(e.dial(t), []byte("new"), 10*time.Second); err != nil {
		t.Fatalf("new connection after heal: %v", err)
	}
}

func TestProxyHoldDeliversLate(t *testing.T) {
	e := startEcho(t)
	c := e.dial(t)
	e.net.Set(1, 0, Rule{Cut: Hold}) // the echo's replies wait
	if err := roundTrip(c, []byte("held"), 300*time.Millisecond); !isTimeout(err) {
		t.Fatalf("through a hold: %v, want a timeout", err)
	}
	e.net.Heal()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, 4)
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "held" {
		t.Fatalf("after heal: %q, %v; want the held bytes", got, err)
	}
}

func TestProxyReset(t *testing.T) {
	e := startEcho(t)
	c := e.dial(t)
	if err := roundTrip(c, []byte("before"), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	e.net.Set(1, 0, Rule{Cut: Reset})
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("existing connection after reset: %v, want it closed", err)
	}
	c2 := e.dial(t)
	_ = c2.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c2.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("new connection during reset: %v, want it closed", err)
	}
	e.net.Heal()
	if err := roundTrip(e.dial(t), []byte("new"), 10*time.Second); err != nil {
		t.Fatalf("after heal: %v", err)
	}
}

func TestProxyDrop(t *testing.T) {
	e := startEcho(t)
	e.net.Set(0, 1, Rule{DropProb: 1})
	c := e.dial(t)
	if err := roundTrip(c, []byte("dropped"), 10*time.Second); err == nil || isTimeout(err) {
		t.Fatalf("with drop probability 1: %v, want the connection closed", err)
	}
}

// TestProxyCatchAll: with CatchAll, a connection from an address of no
// node (127.0.0.1, as clients dial) follows the rules of the pseudo-node.
func TestProxyCatchAll(t *testing.T) {
	const outside = 2
	e := startEchoWith(t, func(n *Network) { n.CatchAll(outside) })
	if got := e.net.Source(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}); got != outside {
		t.Errorf("Source(127.0.0.1) = %d, want %d", got, outside)
	}
	dialOutside := func() net.Conn {
		c, err := net.DialTimeout("tcp", e.proxy, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	if err := roundTrip(dialOutside(), []byte("pass"), 10*time.Second); err != nil {
		t.Fatalf("before the cut: %v", err)
	}
	e.net.Set(outside, 1, Rule{Cut: Reset})
	c := dialOutside()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("connection from outside during reset: %v, want it closed", err)
	}
	// Node 0 is not outside: its link still passes.
	if err := roundTrip(e.dial(t), []byte("node"), 10*time.Second); err != nil {
		t.Fatalf("from node 0 while outside is cut: %v", err)
	}
}
