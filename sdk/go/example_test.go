package concord_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"strconv"
	"time"

	concord "github.com/concord-kv/concord/sdk/go"
)

func ExampleNew() {
	ctx := context.Background()
	// endpoints are the base URLs of some replicas (or gateways), such as
	// "http://10.0.1.10:7100". Given replicas, the client learns the others.
	c, err := concord.New(ctx, endpoints,
		concord.WithTimeout(5*time.Second),
		concord.WithDefaultConsistency(concord.Leader),
	)
	if err != nil {
		log.Fatal(err)
	}

	fmt.Println("replicas:", len(c.Endpoints()))
	if err := c.Close(); err != nil {
		log.Fatal(err)
	}
	// Output: replicas: 3
}

func ExampleClient_Put() {
	ctx := context.Background()
	c, err := concord.New(ctx, endpoints)
	if err != nil {
		log.Fatal(err)
	}

	w, err := c.Put(ctx, "config/app/max_connections", []byte("100"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("applied at a revision:", w.Revision > 0)

	// IfAbsent writes only if the key does not exist yet.
	_, err = c.Put(ctx, "config/app/max_connections", []byte("200"), concord.IfAbsent())
	fmt.Println("second IfAbsent write refused:", errors.Is(err, concord.ErrConflict))
	if err := c.Close(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// applied at a revision: true
	// second IfAbsent write refused: true
}

// A read-modify-write made safe under concurrency: the write applies only
// if nobody wrote the key since it was read, else read again and retry.
func ExampleClient_Put_compareAndSet() {
	ctx := context.Background()
	c, err := concord.New(ctx, endpoints)
	if err != nil {
		log.Fatal(err)
	}

	const key = "counters/page_views"
	if _, err := c.Put(ctx, key, []byte("41")); err != nil {
		log.Fatal(err)
	}
	for {
		kv, err := c.Get(ctx, key, concord.Consistency(concord.Strong))
		if err != nil {
			log.Fatal(err)
		}
		n, err := strconv.Atoi(string(kv.Value))
		if err != nil {
			log.Fatal(err)
		}
		_, err = c.Put(ctx, key, []byte(strconv.Itoa(n+1)), concord.IfModRevision(kv.ModRevision))
		if errors.Is(err, concord.ErrConflict) {
			continue // someone else incremented it first
		}
		if err != nil {
			log.Fatal(err)
		}
		break
	}
	kv, err := c.Get(ctx, key)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("page views:", string(kv.Value))
	if err := c.Close(); err != nil {
		log.Fatal(err)
	}
	// Output: page views: 42
}

func ExampleClient_Get() {
	ctx := context.Background()
	c, err := concord.New(ctx, endpoints)
	if err != nil {
		log.Fatal(err)
	}

	if _, err := c.Put(ctx, "config/app/log_level", []byte("info")); err != nil {
		log.Fatal(err)
	}
	kv, err := c.Get(ctx, "config/app/log_level")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("log level:", string(kv.Value))

	_, err = c.Get(ctx, "config/app/no_such_setting")
	fmt.Println("missing key:", errors.Is(err, concord.ErrNotFound))
	if err := c.Close(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// log level: info
	// missing key: true
}

// Reads choose their consistency: Strong is linearizable, Leader (the
// default) reads the leader's state, Eventual may read any replica, and
// MinRevision makes any replica wait until it has applied your own write.
func ExampleClient_Get_consistency() {
	ctx := context.Background()
	c, err := concord.New(ctx, endpoints)
	if err != nil {
		log.Fatal(err)
	}

	w, err := c.Put(ctx, "users/123/plan", []byte("pro"))
	if err != nil {
		log.Fatal(err)
	}
	strong, err := c.Get(ctx, "users/123/plan", concord.Consistency(concord.Strong))
	if err != nil {
		log.Fatal(err)
	}
	// An eventual read, spread over the replicas, that still sees the write.
	fast, err := c.Get(ctx, "users/123/plan", concord.Consistency(concord.Eventual), concord.MinRevision(w.Revision))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(strong.Value), string(fast.Value))
	if err := c.Close(); err != nil {
		log.Fatal(err)
	}
	// Output: pro pro
}

func ExampleClient_GetWithTTL() {
	ctx := context.Background()
	c, err := concord.New(ctx, endpoints)
	if err != nil {
		log.Fatal(err)
	}

	if _, err := c.Put(ctx, "session:abc123", []byte(`{"user_id":123}`), concord.WithTTL(30*time.Minute)); err != nil {
		log.Fatal(err)
	}
	kv, err := c.GetWithTTL(ctx, "session:abc123")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(kv.Value))
	fmt.Println("expires within 30 minutes:", kv.TTL > 0 && kv.TTL <= 30*time.Minute)
	if err := c.Close(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// {"user_id":123}
	// expires within 30 minutes: true
}

func ExampleClient_TTL() {
	ctx := context.Background()
	c, err := concord.New(ctx, endpoints)
	if err != nil {
		log.Fatal(err)
	}

	if _, err := c.Put(ctx, "cache/report", []byte("..."), concord.WithTTL(time.Hour)); err != nil {
		log.Fatal(err)
	}
	ttl, ok, err := c.TTL(ctx, "cache/report")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("expires:", ok, "within the hour:", ttl <= time.Hour)

	if _, err := c.Put(ctx, "config/app/name", []byte("shop")); err != nil {
		log.Fatal(err)
	}
	_, ok, err = c.TTL(ctx, "config/app/name")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("a key written without TTL expires:", ok)
	if err := c.Close(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// expires: true within the hour: true
	// a key written without TTL expires: false
}

func ExampleClient_Touch() {
	ctx := context.Background()
	c, err := concord.New(ctx, endpoints)
	if err != nil {
		log.Fatal(err)
	}

	if _, err := c.Put(ctx, "session:def456", []byte(`{"user_id":7}`), concord.WithTTL(time.Minute)); err != nil {
		log.Fatal(err)
	}
	// On activity, give the session another 30 minutes. Touch changes
	// neither the value nor its revisions.
	if _, err := c.Touch(ctx, "session:def456", 30*time.Minute); err != nil {
		log.Fatal(err)
	}
	ttl, _, err := c.TTL(ctx, "session:def456")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("extended:", ttl > time.Minute)

	_, err = c.Touch(ctx, "session:expired", 30*time.Minute)
	fmt.Println("touching a missing key:", errors.Is(err, concord.ErrNotFound))
	if err := c.Close(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// extended: true
	// touching a missing key: true
}

func ExampleClient_Delete() {
	ctx := context.Background()
	c, err := concord.New(ctx, endpoints)
	if err != nil {
		log.Fatal(err)
	}

	w, err := c.Put(ctx, "jobs/42/status", []byte("done"))
	if err != nil {
		log.Fatal(err)
	}
	// IfModRevision deletes only the version that was read.
	_, err = c.Delete(ctx, "jobs/42/status", concord.IfModRevision(w.Revision+1000))
	fmt.Println("stale delete refused:", errors.Is(err, concord.ErrConflict))

	d, err := c.Delete(ctx, "jobs/42/status", concord.IfModRevision(w.Revision))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("deleted:", d.Deleted)

	d, err = c.Delete(ctx, "jobs/42/status")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("deleted again:", d.Deleted)
	if err := c.Close(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// stale delete refused: true
	// deleted: true
	// deleted again: false
}

func ExampleClient_PutMany() {
	ctx := context.Background()
	c, err := concord.New(ctx, endpoints)
	if err != nil {
		log.Fatal(err)
	}

	// All three are written at one revision, or none is.
	w, err := c.PutMany(ctx, []concord.Item{
		{Key: "config/db/host", Value: []byte("10.0.2.5")},
		{Key: "config/db/port", Value: []byte("5432")},
		{Key: "config/db/password_rotated", Value: []byte("yes"), TTL: 24 * time.Hour},
	})
	if err != nil {
		log.Fatal(err)
	}
	got, err := c.GetMany(ctx, []string{"config/db/host", "config/db/port"})
	if err != nil {
		log.Fatal(err)
	}
	for _, kv := range got.KVs {
		fmt.Println(kv.Key, string(kv.Value), "same revision:", kv.ModRevision == w.Revision)
	}
	if err := c.Close(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// config/db/host 10.0.2.5 same revision: true
	// config/db/port 5432 same revision: true
}

func ExampleClient_GetMany() {
	ctx := context.Background()
	c, err := concord.New(ctx, endpoints)
	if err != nil {
		log.Fatal(err)
	}

	if _, err := c.PutMany(ctx, []concord.Item{
		{Key: "users/1/name", Value: []byte("ada")},
		{Key: "users/2/name", Value: []byte("grace")},
	}); err != nil {
		log.Fatal(err)
	}
	got, err := c.GetMany(ctx, []string{"users/1/name", "users/2/name", "users/3/name"})
	if err != nil {
		log.Fatal(err)
	}
	for _, kv := range got.KVs {
		fmt.Println(kv.Key, string(kv.Value))
	}
	fmt.Println("missing:", got.Missing)
	if err := c.Close(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// users/1/name ada
	// users/2/name grace
	// missing: [users/3/name]
}

func ExampleClient_DeleteMany() {
	ctx := context.Background()
	c, err := concord.New(ctx, endpoints)
	if err != nil {
		log.Fatal(err)
	}

	if _, err := c.PutMany(ctx, []concord.Item{
		{Key: "tmp/upload/1", Value: []byte("a")},
		{Key: "tmp/upload/2", Value: []byte("b")},
	}); err != nil {
		log.Fatal(err)
	}
	res, err := c.DeleteMany(ctx, []string{"tmp/upload/1", "tmp/upload/2", "tmp/upload/3"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("deleted:", res.Deleted)
	if err := c.Close(); err != nil {
		log.Fatal(err)
	}
	// Output: deleted: 2
}

func ExampleClient_TouchMany() {
	ctx := context.Background()
	c, err := concord.New(ctx, endpoints)
	if err != nil {
		log.Fatal(err)
	}

	if _, err := c.PutMany(ctx, []concord.Item{
		{Key: "session:u1", Value: []byte("{}"), TTL: time.Minute},
		{Key: "session:u2", Value: []byte("{}"), TTL: time.Minute},
	}); err != nil {
		log.Fatal(err)
	}
	res, err := c.TouchMany(ctx, []concord.TouchItem{
		{Key: "session:u1", TTL: 30 * time.Minute},
		{Key: "session:u2", TTL: 30 * time.Minute},
		{Key: "session:u3", TTL: 30 * time.Minute},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("not found:", res.Missing)
	if err := c.Close(); err != nil {
		log.Fatal(err)
	}
	// Output: not found: [session:u3]
}

func ExampleClient_List() {
	ctx := context.Background()
	c, err := concord.New(ctx, endpoints)
	if err != nil {
		log.Fatal(err)
	}

	if _, err := c.PutMany(ctx, []concord.Item{
		{Key: "config/cache/size", Value: []byte("512MB")},
		{Key: "config/cache/policy", Value: []byte("lru")},
		{Key: "config/cache/ttl", Value: []byte("300")},
	}); err != nil {
		log.Fatal(err)
	}
	// List fetches page after page as the loop goes.
	for kv, err := range c.List(ctx, "config/cache/", concord.WithPageSize(2)) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(kv.Key, "=", string(kv.Value))
	}
	if err := c.Close(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// config/cache/policy = lru
	// config/cache/size = 512MB
	// config/cache/ttl = 300
}

func ExampleClient_Status() {
	ctx := context.Background()
	c, err := concord.New(ctx, endpoints)
	if err != nil {
		log.Fatal(err)
	}

	st, err := c.Status(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("answered by the", st.State, "of", len(st.Members), "members")
	fmt.Println("leader known:", st.LeaderID != "" && st.LeaderID == st.NodeID)
	if err := c.Close(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// answered by the leader of 3 members
	// leader known: true
}

func ExampleClient_Members() {
	ctx := context.Background()
	c, err := concord.New(ctx, endpoints)
	if err != nil {
		log.Fatal(err)
	}

	members, err := c.Members(ctx)
	if err != nil {
		log.Fatal(err)
	}
	voters, leaders := 0, 0
	for _, m := range members {
		if m.Voter {
			voters++
		}
		if m.Leader {
			leaders++
		}
	}
	fmt.Println("voters:", voters, "leaders:", leaders)
	if err := c.Close(); err != nil {
		log.Fatal(err)
	}
	// Output: voters: 3 leaders: 1
}

// ServerConfig is a value stored as JSON through Typed.
type ServerConfig struct {
	Host     string   `json:"host"`
	Port     int      `json:"port"`
	Features []string `json:"features"`
}

func ExampleNewTyped() {
	ctx := context.Background()
	c, err := concord.New(ctx, endpoints)
	if err != nil {
		log.Fatal(err)
	}

	// Values are JSON (content type application/json), so REST clients
	// read the same document.
	configs := concord.NewTyped[ServerConfig](c, nil)
	if _, err := configs.Put(ctx, "config/servers/api", ServerConfig{Host: "10.0.1.5", Port: 8443, Features: []string{"tls"}}); err != nil {
		log.Fatal(err)
	}
	cfg, kv, err := configs.Get(ctx, "config/servers/api")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%+v %s\n", cfg, kv.ContentType)
	if err := c.Close(); err != nil {
		log.Fatal(err)
	}
	// Output: {Host:10.0.1.5 Port:8443 Features:[tls]} application/json
}

func ExampleTyped_Put() {
	ctx := context.Background()
	c, err := concord.New(ctx, endpoints)
	if err != nil {
		log.Fatal(err)
	}

	limits := concord.NewTyped[map[string]int](c, nil)
	// Typed.Put takes the options of Client.Put.
	if _, err := limits.Put(ctx, "config/limits", map[string]int{"uploads": 10, "api": 1000}, concord.WithTTL(time.Hour)); err != nil {
		log.Fatal(err)
	}
	kv, err := c.Get(ctx, "config/limits")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(kv.Value))
	if err := c.Close(); err != nil {
		log.Fatal(err)
	}
	// Output: {"api":1000,"uploads":10}
}

func ExampleTyped_Get() {
	ctx := context.Background()
	c, err := concord.New(ctx, endpoints)
	if err != nil {
		log.Fatal(err)
	}

	// A value written as JSON by another client (or through REST) reads
	// back as a T.
	if _, err := c.Put(ctx, "config/servers/worker", []byte(`{"host":"10.0.1.9","port":9000}`),
		concord.WithContentType("application/json")); err != nil {
		log.Fatal(err)
	}
	cfg, _, err := concord.NewTyped[ServerConfig](c, nil).Get(ctx, "config/servers/worker")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(cfg.Host, cfg.Port)
	if err := c.Close(); err != nil {
		log.Fatal(err)
	}
	// Output: 10.0.1.9 9000
}

func ExampleTyped_GetOr() {
	ctx := context.Background()
	c, err := concord.New(ctx, endpoints)
	if err != nil {
		log.Fatal(err)
	}

	retries := concord.NewTyped[int](c, nil)
	n, err := retries.GetOr(ctx, "config/app/max_retries", 3)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("max retries:", n)
	if err := c.Close(); err != nil {
		log.Fatal(err)
	}
	// Output: max retries: 3
}
