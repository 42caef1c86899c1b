package consul_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	concord "github.com/concord-kv/concord/sdk/go"
	"github.com/concord-kv/concord/sdk/go/consul"
)

// A client whose replicas come from Consul: the first seeds are the passing
// replicas when it starts, and Follow keeps them current until the program
// stops. consulAddr is the Consul agent's HTTP address, such as
// "127.0.0.1:8500".
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	w, err := consul.NewWatcher(consul.Config{Address: consulAddr})
	if err != nil {
		log.Fatal(err)
	}
	seeds, err := w.Endpoints(ctx) // waits for a passing replica
	if err != nil {
		log.Fatal(err)
	}
	c, err := concord.New(ctx, seeds)
	if err != nil {
		log.Fatal(err)
	}
	followed := make(chan error, 1)
	go func() { followed <- w.Follow(ctx, c) }()

	if _, err := c.Put(ctx, "service:web:port", []byte("8080")); err != nil {
		log.Fatal(err)
	}
	kv, err := c.Get(ctx, "service:web:port")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(kv.Value))

	cancel() // stops Follow
	if err := <-followed; !errors.Is(err, context.Canceled) {
		log.Fatal(err)
	}
	if err := c.Close(); err != nil {
		log.Fatal(err)
	}
	// Output: 8080
}
