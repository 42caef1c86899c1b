package concord_test

import (
	"context"
	"fmt"
	"log"

	concord "github.com/concord-kv/concord/sdk/go"
)

// Feature flags: each flag is a key under "flags/" holding "enabled" or
// "disabled" (or JSON true/false), read with a default for flags nobody
// has set, so a new flag can ship in code before it is configured.
func Example_featureFlags() {
	ctx := context.Background()
	c, err := concord.New(ctx, endpoints)
	if err != nil {
		log.Fatal(err)
	}

	// An operator (or concordctl, or the REST API) sets the flags.
	if _, err := c.Put(ctx, "flags/new_dashboard", []byte("enabled")); err != nil {
		log.Fatal(err)
	}
	if _, err := c.Put(ctx, "flags/maintenance_mode", []byte("disabled")); err != nil {
		log.Fatal(err)
	}

	// The application reads them.
	if on, err := c.Flag(ctx, "new_dashboard", false); err == nil && on {
		fmt.Println("rendering the new dashboard")
	}
	maintenance, err := c.Flag(ctx, "maintenance_mode", false)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("maintenance mode:", maintenance)
	beta, err := c.Flag(ctx, "beta_search", false) // not set: the default
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("beta search:", beta)

	// Flags that are not on/off are JSON values of any type.
	if _, err := concord.NewTyped[int](c, nil).Put(ctx, "flags/checkout_rollout_percent", 25); err != nil {
		log.Fatal(err)
	}
	percent, err := concord.GetFlag(ctx, c, "checkout_rollout_percent", 0)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("new checkout for %d%% of users\n", percent)
	if err := c.Close(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// rendering the new dashboard
	// maintenance mode: false
	// beta search: false
	// new checkout for 25% of users
}

func ExampleClient_Flag() {
	ctx := context.Background()
	c, err := concord.New(ctx, endpoints)
	if err != nil {
		log.Fatal(err)
	}

	// A JSON boolean works as well as "enabled" and "disabled".
	w, err := concord.NewTyped[bool](c, nil).Put(ctx, "flags/dark_mode", true)
	if err != nil {
		log.Fatal(err)
	}
	// Flags are read often and change rarely: eventual reads spread the
	// load over the replicas. They may lag a little behind a write;
	// MinRevision makes this one wait until the replica has applied it.
	on, err := c.Flag(ctx, "dark_mode", false, concord.Consistency(concord.Eventual), concord.MinRevision(w.Revision))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("dark mode:", on)
	if err := c.Close(); err != nil {
		log.Fatal(err)
	}
	// Output: dark mode: true
}

func ExampleGetFlag() {
	ctx := context.Background()
	c, err := concord.New(ctx, endpoints)
	if err != nil {
		log.Fatal(err)
	}

	type banner struct {
		Text  string `json:"text"`
		Color string `json:"color"`
	}
	if _, err := c.Put(ctx, "flags/banner", []byte(`{"text":"Sale ends Friday","color":"red"}`)); err != nil {
		log.Fatal(err)
	}
	b, err := concord.GetFlag(ctx, c, "banner", banner{Color: "none"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%+v\n", b)

	theme, err := concord.GetFlag(ctx, c, "theme", "classic") // not set
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("theme:", theme)
	if err := c.Close(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// {Text:Sale ends Friday Color:red}
	// theme: classic
}
