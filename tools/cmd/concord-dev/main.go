// Command concord-dev runs the whole Concord stack on one machine: 3 replicas
// and the gateway on 127.0.0.1:4000. See concord-dev --help.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/concord-kv/concord/tools/internal/dev"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := dev.Run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		os.Exit(1)
	}
}
