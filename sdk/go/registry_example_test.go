package concord_test

import (
	"context"
	"fmt"
	"log"
	"time"

	concord "github.com/concord-kv/concord/sdk/go"
)

// Service discovery: each instance registers itself under
// "services/<service>/<instance>" with a TTL and a heartbeat. An instance
// that dies stops its heartbeat, its key expires, and it drops out of
// Discover on its own: healthy means present.
func Example_serviceDiscovery() {
	ctx := context.Background()
	c, err := concord.New(ctx, endpoints)
	if err != nil {
		log.Fatal(err)
	}

	// Each instance of the web service, at startup:
	web1, err := c.Register(ctx, "web", "web-1", concord.ServiceInstance{
		Address: "10.0.1.100", Port: 8080, Meta: map[string]string{"zone": "eu-west-1a"},
	}, 10*time.Second)
	if err != nil {
		log.Fatal(err)
	}
	web2, err := c.Register(ctx, "web", "web-2", concord.ServiceInstance{
		Address: "10.0.1.101", Port: 8080, Meta: map[string]string{"zone": "eu-west-1b"},
	}, 10*time.Second)
	if err != nil {
		log.Fatal(err)
	}

	// A client of the web service:
	instances, err := c.Discover(ctx, "web")
	if err != nil {
		log.Fatal(err)
	}
	for _, in := range instances {
		fmt.Printf("%s at %s:%d in %s\n", in.ID, in.Address, in.Port, in.Meta["zone"])
	}

	// At shutdown, an instance leaves at once rather than at its TTL.
	if err := web1.Deregister(ctx); err != nil {
		log.Fatal(err)
	}
	instances, err = c.Discover(ctx, "web")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("after web-1 left:", len(instances), "instance")
	if err := web2.Deregister(ctx); err != nil {
		log.Fatal(err)
	}
	if err := c.Close(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// web-1 at 10.0.1.100:8080 in eu-west-1a
	// web-2 at 10.0.1.101:8080 in eu-west-1b
	// after web-1 left: 1 instance
}

func ExampleClient_Register() {
	ctx := context.Background()
	c, err := concord.New(ctx, endpoints)
	if err != nil {
		log.Fatal(err)
	}

	// Register for as long as the process runs; the heartbeat renews the
	// 15 s TTL every 5 s.
	reg, err := c.Register(ctx, "billing", "billing-7f9c", concord.ServiceInstance{Address: "10.0.3.7", Port: 9090}, 15*time.Second)
	if err != nil {
		log.Fatal(err)
	}
	kv, err := c.Get(ctx, reg.Key())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(reg.Key(), string(kv.Value))

	// ... serve until shutdown, then:
	if err := reg.Deregister(ctx); err != nil {
		log.Fatal(err)
	}
	if err := c.Close(); err != nil {
		log.Fatal(err)
	}
	// Output: services/billing/billing-7f9c {"id":"billing-7f9c","address":"10.0.3.7","port":9090}
}

func ExampleClient_Discover() {
	ctx := context.Background()
	c, err := concord.New(ctx, endpoints)
	if err != nil {
		log.Fatal(err)
	}

	var regs []*concord.Registration
	for _, id := range []string{"search-a", "search-b"} {
		reg, err := c.Register(ctx, "search", id, concord.ServiceInstance{Address: "10.0.4.1", Port: 7700}, 10*time.Second)
		if err != nil {
			log.Fatal(err)
		}
		regs = append(regs, reg)
	}

	instances, err := c.Discover(ctx, "search")
	if err != nil {
		log.Fatal(err)
	}
	for _, in := range instances {
		fmt.Println(in.ID)
	}

	for _, reg := range regs {
		if err := reg.Deregister(ctx); err != nil {
			log.Fatal(err)
		}
	}
	if err := c.Close(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// search-a
	// search-b
}

func ExampleRegistration_Deregister() {
	ctx := context.Background()
	c, err := concord.New(ctx, endpoints)
	if err != nil {
		log.Fatal(err)
	}

	reg, err := c.Register(ctx, "mailer", "mailer-1", concord.ServiceInstance{Address: "10.0.5.1", Port: 25}, 10*time.Second)
	if err != nil {
		log.Fatal(err)
	}
	// On shutdown: stop the heartbeat and leave at once.
	if err := reg.Deregister(ctx); err != nil {
		log.Fatal(err)
	}
	instances, err := c.Discover(ctx, "mailer")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("instances left:", len(instances))
	if err := c.Close(); err != nil {
		log.Fatal(err)
	}
	// Output: instances left: 0
}
