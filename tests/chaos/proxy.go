package chaos

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Cut is how a link loses its bytes.
type Cut int

// The ways to cut a link.
const (
	// Pass forwards bytes (after Rule.Delay, subject to Rule.DropProb).
	Pass Cut = iota
	// Blackhole reads the bytes and throws them away: the sender's writes
	// succeed and nothing arrives. A connection that lost bytes this way is
	// closed when the link heals (its stream is corrupt), as a real
	// connection would time out.
	Blackhole
	// Hold stops reading: bytes wait in the kernel buffers (the sender
	// blocks once they are full) and are delivered, late, when the link
	// heals, unless an end gave up on the connection by then.
	Hold
	// Reset closes every connection on the link and each new one at once.
	Reset
)

func (c Cut) String() string {
	switch c {
	case Blackhole:
		return "blackhole"
	case Hold:
		return "hold"
	case Reset:
		return "reset"
	}
	return "pass"
}

// Rule is what happens to the bytes of one direction of a link.
type Rule struct {
	Cut Cut
	// Delay (plus up to Jitter) is added to every chunk; order is kept.
	Delay, Jitter time.Duration
	// DropProb is the probability that a chunk closes its connection.
	DropProb float64
}

func (r Rule) String() string {
	if r.Cut != Pass {
		return r.Cut.String()
	}
	s := "pass"
	if r.Delay > 0 || r.Jitter > 0 {
		s += fmt.Sprintf(" delay=%v+%v", r.Delay, r.Jitter)
	}
	if r.DropProb > 0 {
		s += fmt.Sprintf(" drop=%.3f", r.DropProb)
	}
	return s
}

type link struct{ src, dst int }

// Network is the set of chaos proxies of one cluster and the rules of every
// directed link between its nodes. Node i's Raft port sits behind proxy i;
// a connection to proxy i comes from node j when its source address is node
// j's IP (replicas dial peers from the address they listen on), and the
// bytes it carries from j to i follow rule j→i, those from i back to j rule
// i→j. Connections from other addresses always pass, unless CatchAll
// makes them count as a pseudo-node.
//
// Methods are safe for concurrent use.
type Network struct {
	byIP map[netip.Addr]int
	// outside, if not -1, is the index that connections from addresses
	// of no node count as (see CatchAll).
	outside int

	mu      sync.Mutex
	rules   map[link]Rule
	conns   map[*proxyConn]struct{}
	changed chan struct{} // closed and replaced whenever rules change
	rng     *rand.Rand
	proxies []*proxy
	closed  bool
	wg      sync.WaitGroup
}

// NewNetwork returns a network whose node i has the IP ips[i]; every link
// passes.
func NewNetwork(ips []netip.Addr, seed uint64) *Network {
	n := &Network{
		byIP:    map[netip.Addr]int{},
		outside: -1,
		rules:   map[link]Rule{},
		conns:   map[*proxyConn]struct{}{},
		changed: make(chan struct{}),
		rng:     rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15)),
	}
	for i, ip := range ips {
		n.byIP[ip] = i
	}
	return n
}

// CatchAll makes connections from addresses of no node count as coming
// from pseudo-node idx (not a node index), so that rules idx→i and i→idx
// cut them. The API proxies use it: clients and replicas forwarding to the
// leader all dial from 127.0.0.1. Call it before Listen.
func (n *Network) CatchAll(idx int) { n.outside = idx }

// Listen starts proxy dst on listen, forwarding to target (node dst's Raft
// address).
func (n *Network) Listen(dst int, listen, target string) (net.Addr, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, err
	}
	p := &proxy{net: n, dst: dst, ln: ln, target: target}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		_ = ln.Close()
		return nil, errors.New("network closed")
	}
	n.proxies = append(n.proxies, p)
	n.wg.Go(p.serve)
	return ln.Addr(), nil
}

// Close stops every proxy and closes every connection, and waits for their
// goroutines.
func (n *Network) Close() {
	n.mu.Lock()
	n.closed = true
	for _, p := range n.proxies {
		_ = p.ln.Close()
	}
	conns := n.snapshotConnsLocked(func(*proxyConn) bool { return true })
	n.mu.Unlock()
	for _, c := range conns {
		c.close()
	}
	n.wg.Wait()
}

// Set replaces the rule of link src→dst.
func (n *Network) Set(src, dst int, r Rule) {
	n.mu.Lock()
	if r == (Rule{}) {
		delete(n.rules, link{src, dst})
	} else {
		n.rules[link{src, dst}] = r
	}
	var doomed []*proxyConn
	if r.Cut == Reset {
		doomed = n.snapshotConnsLocked(func(c *proxyConn) bool {
			return (c.src == src && c.dst == dst) || (c.src == dst && c.dst == src)
		})
	}
	close(n.changed)
	n.changed = make(chan struct{})
	n.mu.Unlock()
	for _, c := range doomed {
		c.close()
	}
}

// Heal makes every link pass again.
func (n *Network) Heal() {
	n.mu.Lock()
	n.rules = map[link]Rule{}
	close(n.changed)
	n.changed = make(chan struct{})
	n.mu.Unlock()
}

// Rules describes every link that does not simply pass.
func (n *Network) Rules() map[string]string {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := map[string]string{}
	for l, r := range n.rules {
		out[fmt.Sprintf("%d->%d", l.src, l.dst)] = r.String()
	}
	return out
}

func (n *Network) rule(src, dst int) (Rule, <-chan struct{}) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if src < 0 || dst < 0 {
		return Rule{}, n.changed
	}
	return n.rules[link{src, dst}], n.changed
}

func (n *Network) drop(p float64) bool {
	if p <= 0 {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.rng.Float64() < p
}

func (n *Network) jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return time.Duration(n.rng.Int64N(int64(d) + 1))
}

func (n *Network) snapshotConnsLocked(match func(*proxyConn) bool) []*proxyConn {
	var out []*proxyConn
	for c := range n.conns {
		if match(c) {
			out = append(out, c)
		}
	}
	return out
}

// Source returns the node a connection from addr comes from, or -1.
func (n *Network) Source(addr net.Addr) int {
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		return -1
	}
	if i, ok := n.byIP[ap.Addr().Unmap()]; ok {
		return i
	}
	return n.outside
}

type proxy struct {
	net    *Network
	dst    int
	ln     net.Listener
	target string
}

func (p *proxy) serve() {
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		src := p.net.Source(in.RemoteAddr())
		p.net.wg.Go(func() { p.handle(in, src) })
	}
}

func (p *proxy) handle(in net.Conn, src int) {
	if r, _ := p.net.rule(src, p.dst); r.Cut == Reset {
		_ = in.Close()
		return
	}
	if r, _ := p.net.rule(p.dst, src); r.Cut == Reset {
		_ = in.Close()
		return
	}
	out, err := net.DialTimeout("tcp", p.target, 2*time.Second)
	if err != nil { // the node is down: so is the connection
		_ = in.Close()
		return
	}
	c := &proxyConn{in: in, out: out, src: src, dst: p.dst, done: make(chan struct{})}
	p.net.mu.Lock()
	if p.net.closed {
		p.net.mu.Unlock()
		c.close()
		return
	}
	p.net.conns[c] = struct{}{}
	p.net.mu.Unlock()
	defer func() {
		p.net.mu.Lock()
		delete(p.net.conns, c)
		p.net.mu.Unlock()
	}()
	var wg sync.WaitGroup
	wg.Go(func() { p.net.pump(c, in, out, src, p.dst) })
	wg.Go(func() { p.net.pump(c, out, in, p.dst, src) })
	wg.Wait()
}

// proxyConn is one proxied connection: in from the dialing node (src), out
// to the node behind the proxy (dst).
type proxyConn struct {
	in, out  net.Conn
	src, dst int
	once     sync.Once
	done     chan struct{}
}

func (c *proxyConn) close() {
	c.once.Do(func() {
		close(c.done)
		_ = c.in.Close()
		_ = c.out.Close()
	})
}

type chunk struct {
	data []byte
	due  time.Time
}

// pump copies from → to under rule src→dst, read by read. A writer
// goroutine delivers each chunk at its due time so delays keep order
// without limiting throughput. When either end closes, the queued bytes are
// delivered and the whole connection is closed (Raft has no use for
// half-closed connections).
func (n *Network) pump(c *proxyConn, from, to net.Conn, src, dst int) {
	q := make(chan chunk, 4096)
	var wg sync.WaitGroup
	wg.Go(func() {
		for ch := range q {
			if d := time.Until(ch.due); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-t.C:
				case <-c.done:
					t.Stop()
					return
				}
			}
			if _, err := to.Write(ch.data); err != nil {
				c.close()
				return
			}
		}
	})
	n.read(c, from, q, src, dst)
	close(q)
	wg.Wait()
	c.close()
}

// read feeds q from from until the connection ends or a rule ends it.
func (n *Network) read(c *proxyConn, from net.Conn, q chan<- chunk, src, dst int) {
	buf := make([]byte, 32<<10)
	var lastDue time.Time
	poisoned := false
	for {
		nr, err := from.Read(buf)
		if nr > 0 {
			r, changed := n.rule(src, dst)
			for r.Cut == Hold {
				select {
				case <-changed:
				case <-c.done:
					return
				}
				r, changed = n.rule(src, dst)
			}
			switch {
			case r.Cut == Reset:
				c.close()
				return
			case r.Cut == Blackhole:
				poisoned = true
				continue
			case poisoned || n.drop(r.DropProb):
				c.close()
				return
			}
			due := time.Now().Add(r.Delay + n.jitter(r.Jitter))
			if due.Before(lastDue) {
				due = lastDue
			}
			lastDue = due
			select {
			case q <- chunk{data: append([]byte(nil), buf[:nr]...), due: due}:
			case <-c.done:
				return
			}
		}
		if err != nil {
			return
		}
	}
}
