// Package chaos runs Concord clusters of replica processes under faults and
// checks what clients saw: every register key's history must be
// linearizable (porcupine), every acknowledged set element must be in the
// final read, replicas must end with equal state at one applied index, and
// no term may have two leaders.
//
// Each replica listens on its own loopback IP and sits behind a TCP chaos
// proxy on its Raft port (Network); the proxies know a connection's source
// node by its source IP and apply per-link rules (pass, blackhole, hold,
// reset, delay, drop). Nemeses kill, pause and partition nodes. README.md
// beside this file lists the scenarios and how to run them.
package chaos
