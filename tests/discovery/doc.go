// Package discovery tests Consul discovery end to end: in-process replicas
// that find each other only through a Consul agent (the HTTP API double in
// tests/consuldouble, reached through github.com/hashicorp/consul/api), the
// Go SDK following the healthy replicas in Consul, and a gateway started
// with only a Consul address.
package discovery
