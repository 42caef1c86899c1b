//go:build !failpoints

package store

import "github.com/hashicorp/raft"

// failpoints is the hook of the failpoint build (failpoint.go, built only
// with -tags failpoints): in the default build it changes nothing.
func failpoints(_ *Config, logs raft.LogStore, stable raft.StableStore, snaps raft.SnapshotStore) (raft.LogStore, raft.StableStore, raft.SnapshotStore) {
	return logs, stable, snaps
}
