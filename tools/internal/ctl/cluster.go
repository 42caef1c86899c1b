package ctl

import (
	"context"
	"fmt"
	"strings"

	concord "github.com/concord-kv/concord/sdk/go"
	"github.com/spf13/cobra"
)

func newCluster(g *globals) *cobra.Command {
	cl := &cobra.Command{Use: "cluster", Short: "Inspect the cluster"}
	cl.AddCommand(clusterStatus(g), clusterMembers(g))
	return cl
}

func clusterStatus(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the leader's view of the cluster",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *concord.Client) error {
				st, err := c.Status(ctx)
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				if g.output == "json" {
					return g.printJSON(w, st)
				}
				ids := make([]string, len(st.Members))
				for i, m := range st.Members {
					ids[i] = m.ID
				}
				_, err = fmt.Fprintf(w, `Cluster Status:
Node: %s

Cluster Overview:
  commit_index: %d
  applied_index: %d
  current_term: %d
  leader: %s
  members: [%s]
  state: %s

Storage Stats:
  Size: %d entries
  Memory: %d bytes
`, st.NodeID, st.CommitIndex, st.AppliedIndex, st.Term, st.LeaderID, strings.Join(ids, ", "), st.State, st.Size, st.MemoryBytes)
				return err
			})
		},
	}
}

func clusterMembers(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "members",
		Short: "List the Raft members",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *concord.Client) error {
				ms, err := c.Members(ctx)
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				if g.output == "json" {
					return g.printJSON(w, ms)
				}
				if _, err := fmt.Fprintf(w, "%-12s %-8s %-7s %-22s %s\n", "ID", "ROLE", "VOTER", "RAFT", "API"); err != nil {
					return err
				}
				for _, m := range ms {
					role := "follower"
					if m.Leader {
						role = "leader"
					}
					if _, err := fmt.Fprintf(w, "%-12s %-8s %-7t %-22s %s\n", m.ID, role, m.Voter, m.RaftAddress, m.APIAddress); err != nil {
						return err
					}
				}
				return nil
			})
		},
	}
}
