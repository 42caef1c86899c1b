// Package concord is the Go client for Concord, a distributed, strongly
// consistent key-value store.
//
// This module is a skeleton until the Go SDK issue lands: today it only
// names the consistency levels the cluster serves.
package concord

// Consistency is how fresh a read must be.
type Consistency string

// The read levels a Concord cluster serves.
const (
	// Eventual reads any replica's local state; it may be stale.
	Eventual Consistency = "eventual"
	// Leader reads the leader's local state without a quorum round (default).
	Leader Consistency = "leader"
	// Strong reads are linearizable (ReadIndex confirmed by a quorum).
	Strong Consistency = "strong"
)

// Valid reports whether c names a read level.
func (c Consistency) Valid() bool {
	switch c {
	case Eventual, Leader, Strong:
		return true
	}
	return false
}
