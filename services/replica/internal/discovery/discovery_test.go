package discovery

import (
	"strings"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	valid := Config{Address: "127.0.0.1:8500", NodeID: "n1", APIURL: "http://127.0.0.1:7100", RaftAddr: "127.0.0.1:7000"}
	for name, tc := range map[string]struct {
		edit func(*Config)
		want string // "" for valid
	}{
		"valid":             {edit: func(*Config) {}},
		"https api":         {edit: func(c *Config) { c.APIURL = "https://r1.example:7100" }},
		"no address":        {edit: func(c *Config) { c.Address = "" }, want: "consul address is required"},
		"no node id":        {edit: func(c *Config) { c.NodeID = "" }, want: "node id"},
		"no raft address":   {edit: func(c *Config) { c.RaftAddr = "" }, want: "raft address"},
		"api not a URL":     {edit: func(c *Config) { c.APIURL = "127.0.0.1:7100" }, want: "not http(s)://host:port"},
		"api without port":  {edit: func(c *Config) { c.APIURL = "http://r1" }, want: "missing port"},
		"negative expect":   {edit: func(c *Config) { c.BootstrapExpect = -1 }, want: "must not be negative"},
		"negative interval": {edit: func(c *Config) { c.CheckInterval = -1 }, want: "must not be negative"},
	} {
		t.Run(name, func(t *testing.T) {
			c := valid
			tc.edit(&c)
			err := c.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}

func TestServiceID(t *testing.T) {
	a, err := New(Config{Address: "127.0.0.1:8500", NodeID: "n7", APIURL: "http://127.0.0.1:7100", RaftAddr: "127.0.0.1:7000"})
	if err != nil {
		t.Fatal(err)
	}
	if got := a.ServiceID(); got != "concord-replica-n7" {
		t.Fatalf("ServiceID = %q", got)
	}
}
