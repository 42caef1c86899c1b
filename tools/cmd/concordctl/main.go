// Command concordctl is the Concord command-line client. See `concordctl --help`.
package main

import (
	"context"
	"os"

	"github.com/concord-kv/concord/tools/internal/ctl"
)

func main() {
	if err := ctl.Run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		os.Exit(1) // cobra has printed the error
	}
}
