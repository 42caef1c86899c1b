// Command concord-bench measures Concord and etcd. See `concord-bench -h`
// and `concord-bench compare -h`.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/concord-kv/concord/tools/internal/bench"
)

func main() {
	if err := bench.Run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "concord-bench:", err)
		os.Exit(1)
	}
}
