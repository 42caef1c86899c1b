package ctl

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	concord "github.com/concord-kv/concord/sdk/go"
	"github.com/spf13/cobra"
)

func newKV(g *globals) *cobra.Command {
	kv := &cobra.Command{Use: "kv", Short: "Read and write keys"}
	kv.AddCommand(kvGet(g), kvPut(g), kvDelete(g), kvList(g))
	return kv
}

// kvJSON is how a key is shown with --output json (the REST shape).
type kvJSON struct {
	Key         string          `json:"key"`
	Value       json.RawMessage `json:"value,omitempty"`
	Encoding    string          `json:"encoding,omitempty"`
	ContentType string          `json:"content_type,omitempty"`
	Revision    uint64          `json:"revision"`
	Version     uint64          `json:"version"`
	TTL         *int64          `json:"ttl,omitempty"`
}

func toJSON(kv *concord.KV) kvJSON {
	out := kvJSON{Key: kv.Key, ContentType: kv.ContentType, Revision: kv.ModRevision, Version: kv.Version}
	if kv.ContentType == concord.JSON.ContentType() && json.Valid(kv.Value) {
		out.Value = kv.Value
	} else if kv.Value != nil {
		b, _ := json.Marshal(base64.StdEncoding.EncodeToString(kv.Value))
		out.Value, out.Encoding = b, "base64"
	}
	if !kv.ExpiresAt.IsZero() {
		s := int64(kv.TTL / time.Second)
		out.TTL = &s
	}
	return out
}

// text renders a value for a terminal: JSON strings unquoted, other JSON as
// is, bytes as they are.
func text(kv *concord.KV) string {
	if kv.ContentType == concord.JSON.ContentType() {
		var s string
		if json.Unmarshal(kv.Value, &s) == nil {
			return s
		}
	}
	return string(kv.Value)
}

func kvGet(g *globals) *cobra.Command {
	var consistency string
	cmd := &cobra.Command{
		Use:     "get KEY",
		Short:   "Print a key's value",
		Example: "  concordctl kv get user:1001\n  concordctl kv get feature:dark_mode --consistency strong -o json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			level, err := parseConsistency(consistency)
			if err != nil {
				return err
			}
			return g.withClient(cmd, func(ctx context.Context, c *concord.Client) error {
				kv, err := c.GetWithTTL(ctx, args[0], concord.Consistency(level))
				if err != nil {
					return err
				}
				if g.output == "json" {
					return g.printJSON(cmd.OutOrStdout(), toJSON(kv))
				}
				_, err = fmt.Fprintln(cmd.OutOrStdout(), text(kv))
				return err
			})
		},
	}
	cmd.Flags().StringVar(&consistency, "consistency", "", "eventual, leader or strong (default: the server's)")
	return cmd
}

func kvPut(g *globals) *cobra.Command {
	var (
		ttl         time.Duration
		ifAbsent    bool
		ifRev       uint64
		raw         bool
		contentType string
	)
	cmd := &cobra.Command{
		Use:   "put KEY VALUE",
		Short: "Store a value",
		Long: `Store a value. A VALUE that parses as JSON is stored as that JSON; any other
text is stored as a JSON string, so REST and the SDK's Typed read it back the
same way. --raw stores the bytes as given (application/octet-stream).`,
		Example: `  concordctl kv put greeting "Hello, World!"
  concordctl kv put user:1001 '{"name":"Alice","role":"admin"}'
  concordctl kv put locks:job:123 worker-1 --ttl 30s --if-absent`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			value := []byte(args[1])
			opts := []concord.OpOption{}
			switch {
			case raw:
				opts = append(opts, concord.WithContentType(contentType))
			case json.Valid(value):
				opts = append(opts, concord.WithContentType(concord.JSON.ContentType()))
			default:
				value, _ = json.Marshal(args[1])
				opts = append(opts, concord.WithContentType(concord.JSON.ContentType()))
			}
			if ttl != 0 {
				opts = append(opts, concord.WithTTL(ttl))
			}
			if ifAbsent {
				opts = append(opts, concord.IfAbsent())
			}
			if ifRev != 0 {
				opts = append(opts, concord.IfModRevision(ifRev))
			}
			return g.withClient(cmd, func(ctx context.Context, c *concord.Client) error {
				res, err := c.Put(ctx, args[0], value, opts...)
				if err != nil {
					return err
				}
				if g.output == "json" {
					return g.printJSON(cmd.OutOrStdout(), map[string]any{"key": args[0], "revision": res.Revision})
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "OK (revision %d)\n", res.Revision)
				return err
			})
		},
	}
	f := cmd.Flags()
	f.DurationVar(&ttl, "ttl", 0, "expire after this long (whole seconds)")
	f.BoolVar(&ifAbsent, "if-absent", false, "fail if the key exists")
	f.Uint64Var(&ifRev, "if-mod-revision", 0, "fail unless the key's revision is this")
	f.BoolVar(&raw, "raw", false, "store VALUE as raw bytes, not JSON")
	f.StringVar(&contentType, "content-type", concord.ContentTypeBytes, "content type of a --raw value")
	return cmd
}

func kvDelete(g *globals) *cobra.Command {
	var ifRev uint64
	cmd := &cobra.Command{
		Use:     "delete KEY",
		Aliases: []string{"del", "rm"},
		Short:   "Delete a key",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var opts []concord.OpOption
			if ifRev != 0 {
				opts = append(opts, concord.IfModRevision(ifRev))
			}
			return g.withClient(cmd, func(ctx context.Context, c *concord.Client) error {
				res, err := c.Delete(ctx, args[0], opts...)
				if err != nil {
					return err
				}
				if g.output == "json" {
					return g.printJSON(cmd.OutOrStdout(), map[string]any{"key": args[0], "deleted": res.Deleted, "revision": res.Revision})
				}
				word := "deleted"
				if !res.Deleted {
					word = "not found"
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s (revision %d)\n", word, res.Revision)
				return err
			})
		},
	}
	cmd.Flags().Uint64Var(&ifRev, "if-mod-revision", 0, "delete only if the key's revision is this")
	return cmd
}

func kvList(g *globals) *cobra.Command {
	var (
		limit       int
		keysOnly    bool
		consistency string
	)
	cmd := &cobra.Command{
		Use:     "list [PREFIX]",
		Aliases: []string{"ls"},
		Short:   "List keys in order, optionally under a prefix",
		Example: "  concordctl kv list services:web:\n  concordctl kv list --keys-only -o json",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			prefix := ""
			if len(args) == 1 {
				prefix = args[0]
			}
			level, err := parseConsistency(consistency)
			if err != nil {
				return err
			}
			opts := []concord.OpOption{concord.Consistency(level), concord.WithRemainingTTL()}
			if keysOnly {
				opts = append(opts, concord.KeysOnly())
			}
			return g.withClient(cmd, func(ctx context.Context, c *concord.Client) error {
				var items []kvJSON
				n := 0
				for kv, err := range c.List(ctx, prefix, opts...) {
					if err != nil {
						return err
					}
					if limit > 0 && n == limit {
						break
					}
					n++
					if g.output == "json" {
						items = append(items, toJSON(kv))
						continue
					}
					line := kv.Key
					if !keysOnly {
						line += "\t" + text(kv)
					}
					if _, err := fmt.Fprintln(cmd.OutOrStdout(), line); err != nil {
						return err
					}
				}
				if g.output == "json" {
					if items == nil {
						items = []kvJSON{}
					}
					return g.printJSON(cmd.OutOrStdout(), map[string]any{"items": items})
				}
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.IntVar(&limit, "limit", 0, "stop after this many keys (0 = all)")
	f.BoolVar(&keysOnly, "keys-only", false, "print keys without values")
	f.StringVar(&consistency, "consistency", "", "eventual, leader or strong")
	return cmd
}
