// Package ctl is concordctl, the command-line client: key-value commands for
// scripts, cluster inspection and membership changes, over the Go SDK. Later
// issues add token and backup commands here.
package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	concord "github.com/concord-kv/concord/sdk/go"
	"github.com/spf13/cobra"
)

// Run executes concordctl with args (without the program name).
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	root := newRoot(getenv)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	return root.ExecuteContext(ctx)
}

type globals struct {
	getenv   func(string) string
	endpoint string
	token    string
	output   string
	timeout  time.Duration
}

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

func newRoot(getenv func(string) string) *cobra.Command {
	g := &globals{getenv: getenv}
	root := &cobra.Command{
		Use:   "concordctl",
		Short: "Command-line client for Concord",
		Long: `concordctl talks to a Concord cluster through the gateway (or a replica).

Every command takes --endpoint (env CONCORD_ENDPOINT, default http://127.0.0.1:4000,
the gateway of ` + "`make run`" + `), --token (env CONCORD_TOKEN) and --output text|json.`,
		SilenceUsage:  true,
		SilenceErrors: false,
		PersistentPreRunE: func(*cobra.Command, []string) error {
			if g.output != "text" && g.output != "json" {
				return fmt.Errorf("--output must be text or json, not %q", g.output)
			}
			return nil
		},
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.endpoint, "endpoint", envOr(getenv, "CONCORD_ENDPOINT", "http://127.0.0.1:4000"), "gateway or replica URL [CONCORD_ENDPOINT]")
	pf.StringVar(&g.token, "token", getenv("CONCORD_TOKEN"), "bearer token [CONCORD_TOKEN]")
	pf.StringVarP(&g.output, "output", "o", "text", "output format: text or json")
	pf.DurationVar(&g.timeout, "timeout", 10*time.Second, "deadline of each command")
	root.AddCommand(newKV(g), newCluster(g))
	return root
}

// client connects to the endpoint given on the command line.
func (g *globals) client(ctx context.Context) (*concord.Client, error) {
	opts := []concord.Option{concord.WithTimeout(g.timeout)}
	if g.token != "" {
		opts = append(opts, concord.WithToken(g.token))
	}
	return concord.New(ctx, []string{g.endpoint}, opts...)
}

// withClient runs f with a connected client under the command's deadline.
func (g *globals) withClient(cmd *cobra.Command, f func(context.Context, *concord.Client) error) error {
	ctx, cancel := context.WithTimeout(cmd.Context(), g.timeout)
	defer cancel()
	c, err := g.client(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = c.Close() }()
	return f(ctx, c)
}

// done reports a command's result: v as JSON with --output json, else the
// formatted text.
func (g *globals) done(cmd *cobra.Command, v any, format string, args ...any) error {
	w := cmd.OutOrStdout()
	if g.output == "json" {
		return g.printJSON(w, v)
	}
	_, err := fmt.Fprintf(w, format, args...)
	return err
}

func (g *globals) printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func parseConsistency(s string) (concord.ConsistencyLevel, error) {
	switch s {
	case "":
		return concord.Default, nil
	case "eventual":
		return concord.Eventual, nil
	case "leader":
		return concord.Leader, nil
	case "strong":
		return concord.Strong, nil
	}
	return 0, errors.New("--consistency must be eventual, leader or strong")
}
