package concord_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	concord "github.com/concord-kv/concord/sdk/go"
)

// UserSession is the session data a web application keeps.
type UserSession struct {
	UserID int    `json:"user_id"`
	Name   string `json:"name"`
	Cart   []int  `json:"cart,omitempty"`
}

// Session storage: each session lives 30 minutes after its last activity.
// Store it with a TTL, read it with its remaining TTL, extend it on each
// request, and delete it on logout. Any replica can serve the application,
// so sessions survive the loss of a node.
func Example_sessions() {
	ctx := context.Background()
	c, err := concord.New(ctx, endpoints)
	if err != nil {
		log.Fatal(err)
	}

	sessions := concord.NewSessions[UserSession](c, "sessions/", 30*time.Minute)

	// Login: store the session.
	if _, err := sessions.Put(ctx, "9f8e7d", UserSession{UserID: 123, Name: "ada"}); err != nil {
		log.Fatal(err)
	}

	// Each request: load the session, then extend it.
	s, ttl, err := sessions.Get(ctx, "9f8e7d")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("user %d (%s), expires within 30m: %v\n", s.UserID, s.Name, ttl <= 30*time.Minute)
	if _, err := sessions.Touch(ctx, "9f8e7d"); err != nil {
		log.Fatal(err)
	}

	// Logout.
	if err := sessions.Delete(ctx, "9f8e7d"); err != nil {
		log.Fatal(err)
	}
	_, _, err = sessions.Get(ctx, "9f8e7d")
	fmt.Println("after logout, not found:", errors.Is(err, concord.ErrNotFound))
	if err := c.Close(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// user 123 (ada), expires within 30m: true
	// after logout, not found: true
}

func ExampleNewSessions() {
	ctx := context.Background()
	c, err := concord.New(ctx, endpoints)
	if err != nil {
		log.Fatal(err)
	}

	// Sessions of any JSON-encodable type, under "sessions/", living 30
	// minutes after their last Put or Touch.
	sessions := concord.NewSessions[map[string]string](c, "sessions/", 30*time.Minute)
	if _, err := sessions.Put(ctx, "a1b2c3", map[string]string{"locale": "fr"}); err != nil {
		log.Fatal(err)
	}
	kv, err := c.Get(ctx, "sessions/a1b2c3")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(kv.Value))
	if err := c.Close(); err != nil {
		log.Fatal(err)
	}
	// Output: {"locale":"fr"}
}

func ExampleSessions_Put() {
	ctx := context.Background()
	c, err := concord.New(ctx, endpoints)
	if err != nil {
		log.Fatal(err)
	}

	sessions := concord.NewSessions[UserSession](c, "sessions/", 30*time.Minute)
	// Put replaces the whole session and restarts its TTL.
	if _, err := sessions.Put(ctx, "c0ffee", UserSession{UserID: 5, Name: "linus"}); err != nil {
		log.Fatal(err)
	}
	if _, err := sessions.Put(ctx, "c0ffee", UserSession{UserID: 5, Name: "linus", Cart: []int{42}}); err != nil {
		log.Fatal(err)
	}
	s, _, err := sessions.Get(ctx, "c0ffee")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("cart:", s.Cart)
	if err := c.Close(); err != nil {
		log.Fatal(err)
	}
	// Output: cart: [42]
}

func ExampleSessions_Get() {
	ctx := context.Background()
	c, err := concord.New(ctx, endpoints)
	if err != nil {
		log.Fatal(err)
	}

	sessions := concord.NewSessions[UserSession](c, "sessions/", 30*time.Minute)
	if _, err := sessions.Put(ctx, "0a1b2c", UserSession{UserID: 7, Name: "grace", Cart: []int{101, 205}}); err != nil {
		log.Fatal(err)
	}
	s, ttl, err := sessions.Get(ctx, "0a1b2c")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%+v live: %v\n", s, ttl > 0)

	_, _, err = sessions.Get(ctx, "never-logged-in")
	fmt.Println("unknown session:", errors.Is(err, concord.ErrNotFound))
	if err := c.Close(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// {UserID:7 Name:grace Cart:[101 205]} live: true
	// unknown session: true
}

func ExampleSessions_Touch() {
	ctx := context.Background()
	c, err := concord.New(ctx, endpoints)
	if err != nil {
		log.Fatal(err)
	}

	sessions := concord.NewSessions[UserSession](c, "sessions/", 30*time.Minute)
	w, err := sessions.Put(ctx, "5e6f7a", UserSession{UserID: 9})
	if err != nil {
		log.Fatal(err)
	}
	// Touch restarts the 30 minutes and leaves the value and its revision alone.
	if _, err := sessions.Touch(ctx, "5e6f7a"); err != nil {
		log.Fatal(err)
	}
	kv, err := c.Get(ctx, "sessions/5e6f7a")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("unchanged revision:", kv.ModRevision == w.Revision)
	if err := c.Close(); err != nil {
		log.Fatal(err)
	}
	// Output: unchanged revision: true
}

func ExampleSessions_Delete() {
	ctx := context.Background()
	c, err := concord.New(ctx, endpoints)
	if err != nil {
		log.Fatal(err)
	}

	sessions := concord.NewSessions[UserSession](c, "sessions/", 30*time.Minute)
	if _, err := sessions.Put(ctx, "dead01", UserSession{UserID: 1}); err != nil {
		log.Fatal(err)
	}
	if err := sessions.Delete(ctx, "dead01"); err != nil {
		log.Fatal(err)
	}
	_, err = sessions.Touch(ctx, "dead01")
	fmt.Println("deleted:", errors.Is(err, concord.ErrNotFound))
	if err := c.Close(); err != nil {
		log.Fatal(err)
	}
	// Output: deleted: true
}
