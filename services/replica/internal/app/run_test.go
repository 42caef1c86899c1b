package app

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

func mapEnv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestParsePrecedence(t *testing.T) {
	env := mapEnv(map[string]string{
		"CONCORD_NODE_ID":               "from-env",
		"CONCORD_COMPRESSION_ALGORITHM": "zstd",
		"CONCORD_COMPRESSION_LEVEL":     "3",
		"CONCORD_TRAILING_LOGS":         "64",
		"CONCORD_HEARTBEAT_TIMEOUT":     "300ms",
		"CONCORD_PEERS":                 "from-flag=127.0.0.1:1,b=127.0.0.1:2",
		"CONCORD_LOG_STORE":             "wal",
	})
	cfg, _, err := parse([]string{"--node-id", "from-flag"}, env, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.NodeID != "from-flag" || cfg.CompressionAlgorithm != "zstd" || cfg.CompressionLevel != 3 || len(cfg.Peers) != 2 {
		t.Fatalf("got %+v", cfg)
	}
	if cfg.TrailingLogs != 64 || cfg.HeartbeatTimeout != 300*time.Millisecond {
		t.Fatalf("raft timings from env: trailing %d heartbeat %v", cfg.TrailingLogs, cfg.HeartbeatTimeout)
	}
	if cfg.DataDir != "data/from-flag" {
		t.Fatalf("data dir %q", cfg.DataDir)
	}
	if cfg.LogStore != "wal" {
		t.Fatalf("log store %q from env, want wal", cfg.LogStore)
	}
	if cfg, _, _ := parse(nil, mapEnv(nil), &bytes.Buffer{}); cfg.LogStore != "auto" {
		t.Fatalf("default log store %q, want auto", cfg.LogStore)
	}
}

func TestParseRejectsBadInput(t *testing.T) {
	for name, tc := range map[string]struct {
		args []string
		env  map[string]string
		want string
	}{
		"bad int env":          {env: map[string]string{"CONCORD_COMPRESSION_LEVEL": "high"}, want: "CONCORD_COMPRESSION_LEVEL"},
		"bad bool env":         {env: map[string]string{"CONCORD_BOOTSTRAP": "maybe"}, want: "CONCORD_BOOTSTRAP"},
		"bad algorithm":        {args: []string{"--compression-algorithm", "lz4"}, want: "lz4"},
		"bad log store":        {args: []string{"--log-store", "rocks"}, want: `log store "rocks": want auto, wal or bolt`},
		"level range":          {args: []string{"--compression-level", "12"}, want: "level"},
		"bad peers":            {env: map[string]string{"CONCORD_PEERS": "a=1,b"}, want: "want id=host:port"},
		"duplicate peer":       {env: map[string]string{"CONCORD_PEERS": "a=h:1,a=h:2"}, want: "twice"},
		"bad consistency":      {args: []string{"--default-consistency", "linear"}, want: "consistency"},
		"value too large":      {args: []string{"--max-value-bytes", "2000000"}, want: "max value"},
		"stray argument":       {args: []string{"extra"}, want: "unexpected"},
		"bad log level":        {args: []string{"--log-level", "loud"}, want: "log level"},
		"unknown flag":         {args: []string{"--nope"}, want: "not defined"},
		"bad snapshot dur":     {env: map[string]string{"CONCORD_SNAPSHOT_INTERVAL": "soon"}, want: "CONCORD_SNAPSHOT_INTERVAL"},
		"bad trailing logs":    {env: map[string]string{"CONCORD_TRAILING_LOGS": "many"}, want: "CONCORD_TRAILING_LOGS"},
		"lease > heartbeat":    {args: []string{"--heartbeat-timeout", "1s", "--leader-lease-timeout", "2s"}, want: "leader lease timeout"},
		"election < heartbeat": {args: []string{"--heartbeat-timeout", "2s", "--election-timeout", "1s"}, want: "election timeout"},
		"tiny heartbeat":       {args: []string{"--heartbeat-timeout", "1ms"}, want: "at least 5ms"},
		"bootstrap expect":     {env: map[string]string{"CONCORD_NODE_ID": "a", "CONCORD_PEERS": "a=h:1,b=h:2", "CONCORD_BOOTSTRAP_EXPECT": "3"}, want: "bootstrap expects 3 members but the peer list has 2"},
		"bad expect env":       {env: map[string]string{"CONCORD_BOOTSTRAP_EXPECT": "three"}, want: "CONCORD_BOOTSTRAP_EXPECT"},
		"join and peers":       {args: []string{"--join", "http://h:1"}, env: map[string]string{"CONCORD_PEERS": "node1=h:1"}, want: "exclude each other"},
		"join not a URL":       {env: map[string]string{"CONCORD_JOIN": "h:1"}, want: "not an http(s) URL"},
		"consul and peers":     {args: []string{"--consul-addr", "127.0.0.1:8500"}, env: map[string]string{"CONCORD_PEERS": "node1=h:1"}, want: "consul-addr excludes peers and join"},
		"consul and join":      {args: []string{"--join", "http://h:1"}, env: map[string]string{"CONCORD_CONSUL_ADDR": "127.0.0.1:8500"}, want: "consul-addr excludes peers and join"},
		"bad check interval":   {env: map[string]string{"CONCORD_CONSUL_CHECK_INTERVAL": "often"}, want: "CONCORD_CONSUL_CHECK_INTERVAL"},
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := parse(tc.args, mapEnv(tc.env), &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}

func TestRunServesUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	var out bytes.Buffer
	done := make(chan error, 1)
	dir := t.TempDir()
	go func() {
		done <- Run(ctx, []string{"--api-addr", "127.0.0.1:0", "--raft-addr", "127.0.0.1:0", "--data-dir", dir, "--log-level", "warn"},
			mapEnv(nil), &syncWriter{buf: &out}, &bytes.Buffer{})
	}()
	// The API address is printed once the replica listens.
	var base string
	for base == "" {
		select {
		case err := <-done:
			t.Fatalf("Run returned early: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
		line := (&syncWriter{buf: &out}).String()
		if i := strings.Index(line, "api http://"); i >= 0 {
			base = strings.Fields(line[i+4:])[0]
		}
	}
	for {
		resp, err := http.Get(base + "/ready")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func TestParseConsul(t *testing.T) {
	env := mapEnv(map[string]string{
		"CONCORD_CONSUL_ADDR":      "127.0.0.1:8500",
		"CONCORD_BOOTSTRAP_EXPECT": "3",
	})
	cfg, _, err := parse([]string{"--consul-service", "kv", "--consul-check-interval", "2s"}, env, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ConsulAddr != "127.0.0.1:8500" || cfg.ConsulService != "kv" || cfg.ConsulCheckInterval != 2*time.Second || cfg.BootstrapExpect != 3 {
		t.Fatalf("got consul %q service %q interval %v expect %d", cfg.ConsulAddr, cfg.ConsulService, cfg.ConsulCheckInterval, cfg.BootstrapExpect)
	}
}
