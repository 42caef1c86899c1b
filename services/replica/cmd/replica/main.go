// Command replica runs one Concord replica. See `replica --help`.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/concord-kv/concord/services/replica/internal/app"
)

func main() {
	if err := app.Run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "replica:", err)
		os.Exit(1)
	}
}
