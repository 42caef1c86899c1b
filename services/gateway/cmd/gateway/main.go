// Command gateway serves Concord's REST and Connect API in front of the replicas.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/concord-kv/concord/services/gateway/internal/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := app.Run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		os.Exit(1)
	}
}
