package store

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// streamLayer is raft's TCP stream layer over a listener we were handed, with
// a switch that cuts the node off (tests partition nodes with it).
type streamLayer struct {
	net.Listener
	advertise net.Addr
	source    net.Addr // local address for outgoing connections, or nil
	blocked   atomic.Bool

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

var errPartitioned = errors.New("link cut")

func newStreamLayer(ln net.Listener, advertise net.Addr) *streamLayer {
	if advertise == nil {
		advertise = ln.Addr()
	}
	s := &streamLayer{Listener: ln, advertise: advertise, conns: map[net.Conn]struct{}{}}
	// Dial peers from the address we listen on when it is a specific one, so
	// a peer (or a firewall, or the chaos suite's proxies) can tell which
	// member a connection comes from.
	if a, ok := ln.Addr().(*net.TCPAddr); ok && !a.IP.IsUnspecified() {
		s.source = &net.TCPAddr{IP: a.IP}
	}
	return s
}

var _ raft.StreamLayer = (*streamLayer)(nil)

func (s *streamLayer) Addr() net.Addr { return s.advertise }

func (s *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	if s.blocked.Load() {
		return nil, errPartitioned
	}
	d := net.Dialer{Timeout: timeout, LocalAddr: s.source}
	c, err := d.Dial("tcp", string(address))
	if err != nil {
		return nil, err
	}
	return s.track(c), nil
}

func (s *streamLayer) Accept() (net.Conn, error) {
	for {
		c, err := s.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if s.blocked.Load() {
			_ = c.Close()
			continue
		}
		return s.track(c), nil
	}
}

// SetBlocked cuts (true) or restores (false) every raft link of this node.
func (s *streamLayer) SetBlocked(b bool) {
	s.blocked.Store(b)
	if b {
		s.closeConns()
	}
}

// Close closes the listener and every connection still open. raft's
// NetworkTransport.Close closes only the listener: without this, the
// connections in its pool and the ones it accepted (each with a goroutine
// blocked reading it) would outlive a stopped node.
func (s *streamLayer) Close() error {
	err := s.Listener.Close()
	s.closeConns()
	return err
}

func (s *streamLayer) closeConns() {
	s.mu.Lock()
	conns := make([]net.Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}

func (s *streamLayer) track(c net.Conn) net.Conn {
	tc := &trackedConn{Conn: c, layer: s}
	s.mu.Lock()
	s.conns[tc] = struct{}{}
	s.mu.Unlock()
	if s.blocked.Load() {
		_ = tc.Close()
	}
	return tc
}

type trackedConn struct {
	net.Conn
	layer *streamLayer
	once  sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.layer.mu.Lock()
		delete(c.layer.conns, c)
		c.layer.mu.Unlock()
	})
	return c.Conn.Close()
}
