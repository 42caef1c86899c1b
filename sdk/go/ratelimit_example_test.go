package concord_test

import (
	"context"
	"fmt"
	"log"
	"time"

	concord "github.com/concord-kv/concord/sdk/go"
)

// Rate limiting: at most N requests per user per day, counted in the
// cluster so that every instance of the service shares the count. Unlike a
// plain get-then-put, Allow increments with compare-and-set, so concurrent
// requests never push a user past the limit.
func Example_rateLimiting() {
	ctx := context.Background()
	c, err := concord.New(ctx, endpoints)
	if err != nil {
		log.Fatal(err)
	}

	// 3 requests per user per day (1000 in production).
	limiter := c.RateLimiter("rate_limit:", 3, 24*time.Hour)
	for i := 1; i <= 4; i++ {
		allowed, remaining, err := limiter.Allow(ctx, "user-123")
		if err != nil {
			log.Fatal(err)
		}
		if allowed {
			fmt.Printf("request %d: allowed, %d left today\n", i, remaining)
		} else {
			fmt.Printf("request %d: denied (429 Too Many Requests)\n", i)
		}
	}
	if err := c.Close(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// request 1: allowed, 2 left today
	// request 2: allowed, 1 left today
	// request 3: allowed, 0 left today
	// request 4: denied (429 Too Many Requests)
}

func ExampleClient_RateLimiter() {
	ctx := context.Background()
	c, err := concord.New(ctx, endpoints)
	if err != nil {
		log.Fatal(err)
	}

	// 100 login attempts per IP address per hour; each IP has its own count.
	logins := c.RateLimiter("ratelimit/login/", 100, time.Hour)
	_, left1, err := logins.Allow(ctx, "203.0.113.7")
	if err != nil {
		log.Fatal(err)
	}
	_, left2, err := logins.Allow(ctx, "198.51.100.23")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(left1, left2)
	if err := c.Close(); err != nil {
		log.Fatal(err)
	}
	// Output: 99 99
}

func ExampleRateLimiter_Allow() {
	ctx := context.Background()
	c, err := concord.New(ctx, endpoints)
	if err != nil {
		log.Fatal(err)
	}

	exports := c.RateLimiter("ratelimit/export/", 1, 24*time.Hour)
	for range 2 {
		allowed, _, err := exports.Allow(ctx, "tenant-42")
		if err != nil {
			log.Fatal(err) // the cluster could not be reached: fail closed
		}
		fmt.Println("export allowed:", allowed)
	}
	if err := c.Close(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// export allowed: true
	// export allowed: false
}
