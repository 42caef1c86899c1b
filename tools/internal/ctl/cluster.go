package ctl

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	concord "github.com/concord-kv/concord/sdk/go"
	"github.com/spf13/cobra"
)

func newCluster(g *globals) *cobra.Command {
	cl := &cobra.Command{
		Use:   "cluster",
		Short: "Inspect the cluster and change its membership",
		Long: `Inspect the cluster and change its membership.

Membership changes run on the leader; any replica or gateway accepts them.
See docs/OPERATIONS.md for adding, removing and replacing replicas safely.`,
	}
	cl.AddCommand(clusterStatus(g), clusterMembers(g), clusterAdd(g), clusterRemove(g), clusterRemoveDead(g), clusterTransfer(g))
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
		Short: "List the Raft members with their state and last contact",
		Long: `List the Raft members as the leader sees them: state (leader, follower, or
unknown when the leader cannot reach the member), suffrage (voter or nonvoter),
how long ago the leader last heard from each, and for how long it has been
failing to reach it.`,
		Args: cobra.NoArgs,
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
				if _, err := fmt.Fprintf(w, "%-12s %-9s %-9s %-13s %-12s %-22s %s\n",
					"ID", "STATE", "SUFFRAGE", "LAST CONTACT", "UNREACHABLE", "RAFT", "API"); err != nil {
					return err
				}
				for _, m := range ms {
					unreachable := "-"
					if m.Unreachable > 0 {
						unreachable = since(m.Unreachable)
					}
					if _, err := fmt.Fprintf(w, "%-12s %-9s %-9s %-13s %-12s %-22s %s\n", m.ID, m.State, suffrage(m.Voter),
						since(m.LastContact), unreachable, m.RaftAddress, m.APIAddress); err != nil {
						return err
					}
				}
				return nil
			})
		},
	}
}

func suffrage(voter bool) string {
	if voter {
		return "voter"
	}
	return "nonvoter"
}

// since renders a duration for the members table ("-" when unknown).
func since(d time.Duration) string {
	switch {
	case d < 0:
		return "-"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	}
	return d.Round(100 * time.Millisecond).String()
}

// addTimeout is how long `cluster add` waits for a new voter to catch up
// unless --timeout says otherwise.
const addTimeout = 2 * time.Minute

func clusterAdd(g *globals) *cobra.Command {
	var (
		api      string
		nonvoter bool
	)
	cmd := &cobra.Command{
		Use:   "add ID RAFT_ADDR",
		Short: "Add a replica to the cluster (or promote a non-voter)",
		Long: `Add the replica ID, reachable for Raft at RAFT_ADDR (host:port), to the cluster.

Start the replica first, with an empty data directory and --bootstrap=false
(a replica started with --join adds itself and needs no add). A voter is added
as a non-voter, and promoted once it has caught up with the log: the command
returns then. It waits up to --timeout (2m unless given); if that passes first,
the replica stays a non-voter: run add again to promote it. Adding a member
that is already there changes nothing.`,
		Example: `  concordctl cluster add n4 10.0.0.4:7000 --api-addr http://10.0.0.4:7100
  concordctl cluster add n5 10.0.0.5:7000 --nonvoter`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if f := cmd.Flag("timeout"); f == nil || !f.Changed {
				g.timeout = addTimeout
			}
			return g.withClient(cmd, func(ctx context.Context, c *concord.Client) error {
				m, err := c.AddMember(ctx, concord.NewMember{ID: args[0], RaftAddress: args[1], APIAddress: api, Nonvoter: nonvoter})
				if err != nil {
					return err
				}
				w := cmd.OutOrStdout()
				if g.output == "json" {
					return g.printJSON(w, m)
				}
				_, err = fmt.Fprintf(w, "added %s as a %s (raft %s)\n", m.ID, suffrage(m.Voter), m.RaftAddress)
				return err
			})
		},
	}
	cmd.Flags().StringVar(&api, "api-addr", "", "the replica's API base URL (optional: it registers its own once it is a member)")
	cmd.Flags().BoolVar(&nonvoter, "nonvoter", false, "add a non-voter: it gets the data and serves eventual reads but does not count for quorum")
	return cmd
}

func clusterRemove(g *globals) *cobra.Command {
	var unreachable time.Duration
	cmd := &cobra.Command{
		Use:   "remove ID",
		Short: "Remove a replica from the cluster",
		Long: `Remove the replica ID from the Raft configuration. Removing the leader makes it
step down first. With --if-unreachable-for, the leader removes the member only
if it has been failing to reach it for at least that long, checked at the
moment of the change.`,
		Example: `  concordctl cluster remove n3
  concordctl cluster remove n3 --if-unreachable-for 5m`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if unreachable < 0 {
				return errors.New("--if-unreachable-for must not be negative")
			}
			return g.withClient(cmd, func(ctx context.Context, c *concord.Client) error {
				if err := c.RemoveMember(ctx, args[0], concord.IfUnreachableFor(unreachable)); err != nil {
					return err
				}
				return g.done(cmd, map[string]any{"removed": []string{args[0]}}, "removed %s\n", args[0])
			})
		},
	}
	cmd.Flags().DurationVar(&unreachable, "if-unreachable-for", 0, "remove only if the leader has not reached it for this long (0: regardless)")
	return cmd
}

func clusterRemoveDead(g *globals) *cobra.Command {
	var (
		after  time.Duration
		dryRun bool
	)
	cmd := &cobra.Command{
		Use:   "remove-dead",
		Short: "Remove every member the leader has not reached for --after",
		Long: `Remove every member the leader has been failing to reach for at least --after
(env CONCORD_DEAD_AFTER, default 10m): dead-member removal in one command.
The leader checks each member again at the moment it removes it, so a member
that came back in the meantime stays. Check first with --dry-run.`,
		Example: `  concordctl cluster remove-dead --dry-run
  concordctl cluster remove-dead --after 30m`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if after < time.Second {
				return errors.New("--after must be at least 1s")
			}
			return g.withClient(cmd, func(ctx context.Context, c *concord.Client) error {
				ms, err := c.Members(ctx)
				if err != nil {
					return err
				}
				removed := []string{}
				for _, m := range ms {
					if m.Unreachable < after {
						continue
					}
					if !dryRun {
						if err := c.RemoveMember(ctx, m.ID, concord.IfUnreachableFor(after)); err != nil {
							return err
						}
					}
					removed = append(removed, m.ID)
				}
				verb := "removed"
				if dryRun {
					verb = "would remove"
				}
				if len(removed) == 0 {
					return g.done(cmd, map[string]any{"removed": removed}, "no member has been unreachable for %v\n", after)
				}
				key := "removed"
				if dryRun {
					key = "would_remove"
				}
				return g.done(cmd, map[string]any{key: removed}, "%s %s\n", verb, strings.Join(removed, ", "))
			})
		},
	}
	def := 10 * time.Minute
	if v := g.getenv("CONCORD_DEAD_AFTER"); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			def = d
		}
	}
	cmd.Flags().DurationVar(&after, "after", def, "how long the leader must have failed to reach a member [CONCORD_DEAD_AFTER]")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "list the members that would be removed, remove none")
	return cmd
}

func clusterTransfer(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "transfer-leader [ID]",
		Short: "Hand leadership to another voter",
		Long: `Hand leadership to the voter ID, or, without ID, to the most up-to-date voter.
The command returns once the old leader has stepped down. Use it before taking
the leader down for maintenance: writes pause for one election instead of
waiting out a failure detection.`,
		Example: `  concordctl cluster transfer-leader n2
  concordctl cluster transfer-leader`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			target := ""
			if len(args) == 1 {
				target = args[0]
			}
			return g.withClient(cmd, func(ctx context.Context, c *concord.Client) error {
				leader, err := c.TransferLeadership(ctx, target)
				if err != nil {
					return err
				}
				if leader == "" {
					return g.done(cmd, map[string]any{"leader": nil}, "leadership handed over; the election has not finished yet\n")
				}
				return g.done(cmd, map[string]any{"leader": leader}, "leader is now %s\n", leader)
			})
		},
	}
}
