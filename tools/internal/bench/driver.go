package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	concord "github.com/concord-kv/concord/sdk/go"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Driver performs single operations against one system. Implementations are
// safe for concurrent use.
type Driver interface {
	Put(ctx context.Context, key string, value []byte, ttl time.Duration) error
	Get(ctx context.Context, key string) error
	// CAS reads key and writes it back conditioned on the revision read.
	CAS(ctx context.Context, key string, value []byte) error
	PutMany(ctx context.Context, keys []string, value []byte) error
	GetMany(ctx context.Context, keys []string) error
	Close() error
}

// Consistency is the read level: eventual, leader or strong (etcd maps
// eventual to serializable and leader/strong to linearizable).
type Consistency string

// NewDriver connects to target: "sdk" (Concord through the Go SDK), "rest"
// (Concord REST through a gateway) or "etcd".
func NewDriver(ctx context.Context, target string, endpoints []string, cons Consistency, conns int) (Driver, error) {
	switch target {
	case "sdk":
		return newSDKDriver(ctx, endpoints, cons)
	case "rest":
		return newRESTDriver(endpoints, cons, conns)
	case "etcd":
		return newEtcdDriver(endpoints, cons, conns)
	}
	return nil, fmt.Errorf("unknown target %q (want sdk, rest or etcd)", target)
}

type sdkDriver struct {
	c    *concord.Client
	read concord.OpOption
}

func newSDKDriver(ctx context.Context, endpoints []string, cons Consistency) (*sdkDriver, error) {
	level := map[Consistency]concord.ConsistencyLevel{"eventual": concord.Eventual, "leader": concord.Leader, "strong": concord.Strong}[cons]
	if level == concord.Default {
		return nil, fmt.Errorf("unknown consistency %q", cons)
	}
	c, err := concord.New(ctx, endpoints)
	if err != nil {
		return nil, err
	}
	return &sdkDriver{c: c, read: concord.Consistency(level)}, nil
}

func (d *sdkDriver) Put(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	var opts []concord.OpOption
	if ttl > 0 {
		opts = append(opts, concord.WithTTL(ttl))
	}
	_, err := d.c.Put(ctx, key, value, opts...)
	return err
}

func (d *sdkDriver) Get(ctx context.Context, key string) error {
	_, err := d.c.Get(ctx, key, d.read)
	if errors.Is(err, concord.ErrNotFound) {
		return nil
	}
	return err
}

func (d *sdkDriver) CAS(ctx context.Context, key string, value []byte) error {
	kv, err := d.c.Get(ctx, key, concord.Consistency(concord.Leader))
	if errors.Is(err, concord.ErrNotFound) {
		_, err = d.c.Put(ctx, key, value, concord.IfAbsent())
	} else if err == nil {
		_, err = d.c.Put(ctx, key, value, concord.IfModRevision(kv.ModRevision))
	}
	if errors.Is(err, concord.ErrConflict) {
		return nil // a lost race is a correct CAS outcome
	}
	return err
}

func (d *sdkDriver) PutMany(ctx context.Context, keys []string, value []byte) error {
	items := make([]concord.Item, len(keys))
	for i, k := range keys {
		items[i] = concord.Item{Key: k, Value: value}
	}
	_, err := d.c.PutMany(ctx, items)
	return err
}

func (d *sdkDriver) GetMany(ctx context.Context, keys []string) error {
	_, err := d.c.GetMany(ctx, keys, d.read)
	return err
}

func (d *sdkDriver) Close() error { return d.c.Close() }

// restDriver speaks the gateway's REST API with a keep-alive HTTP/1.1 pool.
type restDriver struct {
	hc        *http.Client
	endpoints []string
	cons      Consistency
}

func newRESTDriver(endpoints []string, cons Consistency, conns int) (*restDriver, error) {
	if len(endpoints) == 0 {
		return nil, errors.New("rest target needs a gateway URL")
	}
	return &restDriver{
		hc:        &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}},
		endpoints: endpoints, cons: cons,
	}, nil
}

func (d *restDriver) url(key string) string {
	return d.endpoints[len(key)%len(d.endpoints)] + "/api/v1/kv/" + key
}

func (d *restDriver) do(ctx context.Context, method, url string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := d.hc.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode >= 300 && resp.StatusCode != http.StatusNotFound {
		return fmt.Errorf("%s %s: %s", method, url, resp.Status)
	}
	return nil
}

func jsonValue(value []byte, ttl time.Duration) []byte {
	var b strings.Builder
	b.WriteString(`{"value":"`)
	b.Write(value) // bench values are printable ASCII
	b.WriteString(`"`)
	if ttl > 0 {
		fmt.Fprintf(&b, `,"ttl":%d`, int(ttl/time.Second))
	}
	b.WriteString(`}`)
	return []byte(b.String())
}

func (d *restDriver) Put(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	return d.do(ctx, http.MethodPut, d.url(key), jsonValue(value, ttl))
}

func (d *restDriver) Get(ctx context.Context, key string) error {
	return d.do(ctx, http.MethodGet, d.url(key)+"?consistency="+string(d.cons), nil)
}

func (d *restDriver) CAS(context.Context, string, []byte) error {
	return errors.New("cas is not measured through REST")
}

func (d *restDriver) PutMany(ctx context.Context, keys []string, value []byte) error {
	var b strings.Builder
	b.WriteString(`{"items":[`)
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"key":%q,"value":%q}`, k, value)
	}
	b.WriteString(`]}`)
	return d.do(ctx, http.MethodPost, d.endpoints[0]+"/api/v1/kv/bulk", []byte(b.String()))
}

func (d *restDriver) GetMany(ctx context.Context, keys []string) error {
	var b strings.Builder
	b.WriteString(`{"keys":[`)
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%q", k)
	}
	b.WriteString(`]}`)
	return d.do(ctx, http.MethodPost, d.endpoints[0]+"/api/v1/kv/bulk/get?consistency="+string(d.cons), []byte(b.String()))
}

func (d *restDriver) Close() error {
	d.hc.CloseIdleConnections()
	return nil
}

// etcdDriver uses the official client; conns clients share the load.
type etcdDriver struct {
	clients []*clientv3.Client
	serial  bool
	next    atomic.Uint64
}

func newEtcdDriver(endpoints []string, cons Consistency, conns int) (*etcdDriver, error) {
	d := &etcdDriver{serial: cons == "eventual"}
	for range max(conns, 1) {
		c, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			_ = d.Close()
			return nil, err
		}
		d.clients = append(d.clients, c)
	}
	return d, nil
}

func (d *etcdDriver) client() *clientv3.Client {
	return d.clients[d.next.Add(1)%uint64(len(d.clients))]
}

func (d *etcdDriver) readOpts() []clientv3.OpOption {
	if d.serial {
		return []clientv3.OpOption{clientv3.WithSerializable()}
	}
	return nil
}

func (d *etcdDriver) Put(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	c := d.client()
	if ttl <= 0 {
		_, err := c.Put(ctx, key, string(value))
		return err
	}
	lease, err := c.Grant(ctx, int64(ttl/time.Second))
	if err != nil {
		return err
	}
	_, err = c.Put(ctx, key, string(value), clientv3.WithLease(lease.ID))
	return err
}

func (d *etcdDriver) Get(ctx context.Context, key string) error {
	_, err := d.client().Get(ctx, key, d.readOpts()...)
	return err
}

func (d *etcdDriver) CAS(ctx context.Context, key string, value []byte) error {
	c := d.client()
	resp, err := c.Get(ctx, key)
	if err != nil {
		return err
	}
	var rev int64
	if len(resp.Kvs) > 0 {
		rev = resp.Kvs[0].ModRevision
	}
	_, err = c.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).
		Then(clientv3.OpPut(key, string(value))).Commit()
	return err
}

func (d *etcdDriver) PutMany(ctx context.Context, keys []string, value []byte) error {
	ops := make([]clientv3.Op, len(keys))
	for i, k := range keys {
		ops[i] = clientv3.OpPut(k, string(value))
	}
	_, err := d.client().Txn(ctx).Then(ops...).Commit()
	return err
}

func (d *etcdDriver) GetMany(ctx context.Context, keys []string) error {
	ops := make([]clientv3.Op, len(keys))
	for i, k := range keys {
		ops[i] = clientv3.OpGet(k, d.readOpts()...)
	}
	_, err := d.client().Txn(ctx).Then(ops...).Commit()
	return err
}

func (d *etcdDriver) Close() error {
	var errs []error
	for _, c := range d.clients {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}
