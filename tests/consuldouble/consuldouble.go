// Package consuldouble is a test double of the Consul HTTP API: the part of
// it Concord's discovery uses through github.com/hashicorp/consul/api, served
// by one in-process "agent" whose node is the whole catalog. No Consul server
// can be installed on our machines; the production code keeps using the real
// client library against this double, unchanged.
//
// Served (JSON shaped like Consul 1.x's, field names as the api package's
// structs encode them):
//
//	PUT /v1/agent/service/register            AgentServiceRegistration, with Check or Checks
//	PUT /v1/agent/service/deregister/{id}
//	PUT /v1/agent/check/{pass,warn,fail}/{id} TTL checks (?note=)
//	PUT /v1/agent/check/update/{id}           {"Status","Output"}
//	GET /v1/agent/services                    map of AgentService
//	GET /v1/agent/checks                      map of AgentCheck
//	GET /v1/catalog/services                  service name -> tags      (blocking)
//	GET /v1/catalog/service/{name}            []CatalogService          (blocking, ?tag=)
//	GET /v1/health/service/{name}             []ServiceEntry            (blocking, ?passing, ?tag=)
//	GET /v1/status/leader
//
// Blocking queries work as in Consul: with ?index=N (N > 0) a read waits
// until the index of what it reads passes N, or ?wait (default 5m, at most
// 10m) runs out, and every answer carries X-Consul-Index, X-Consul-KnownLeader
// and X-Consul-LastContact. HTTP checks are run by the double at their
// Interval (GET; 2xx passing, 429 warning, anything else critical); TTL
// checks go critical when their TTL passes without an update; a service whose
// check has been critical for DeregisterCriticalServiceAfter is deregistered.
// New checks start critical unless the registration gives a Status.
package consuldouble

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Check statuses.
const (
	Passing  = "passing"
	Warning  = "warning"
	Critical = "critical"
)

// NodeName and NodeAddress describe the double's single node.
const (
	NodeName    = "consul-double"
	NodeAddress = "127.0.0.1"
)

const (
	defaultWait = 5 * time.Minute
	maxWait     = 10 * time.Minute
)

// Server is a running double. Its methods are safe for concurrent use.
type Server struct {
	srv    *httptest.Server
	client *http.Client

	mu       sync.Mutex
	index    uint64            // the latest change
	svcIndex map[string]uint64 // service name -> index of its last change
	services map[string]*service
	checks   map[string]*check // by check id
	changed  chan struct{}     // closed and replaced at every change
	down     bool              // answer every request with 500
	closed   bool

	wg     sync.WaitGroup
	stop   chan struct{}
	ctx    context.Context // canceled by Close: ends running HTTP checks
	cancel context.CancelFunc
}

type service struct {
	reg         registration
	createIndex uint64
	modifyIndex uint64
}

type check struct {
	id, name, serviceID string
	def                 checkDefinition
	status, output      string
	criticalSince       time.Time // zero unless critical
	ttlDeadline         time.Time // TTL checks
	createIndex         uint64
	modifyIndex         uint64
	stop                chan struct{}
}

// registration is api.AgentServiceRegistration's JSON.
type registration struct {
	Kind    string            `json:",omitempty"`
	ID      string            `json:",omitempty"`
	Name    string            `json:",omitempty"`
	Tags    []string          `json:",omitempty"`
	Port    int               `json:",omitempty"`
	Address string            `json:",omitempty"`
	Meta    map[string]string `json:",omitempty"`
	Check   *checkDefinition  `json:",omitempty"`
	Checks  []checkDefinition `json:",omitempty"`
}

// checkDefinition is api.AgentServiceCheck's JSON.
type checkDefinition struct {
	CheckID                        string `json:",omitempty"`
	Name                           string `json:",omitempty"`
	Interval                       string `json:",omitempty"`
	Timeout                        string `json:",omitempty"`
	TTL                            string `json:",omitempty"`
	HTTP                           string `json:",omitempty"`
	Method                         string `json:",omitempty"`
	Status                         string `json:",omitempty"`
	Notes                          string `json:",omitempty"`
	DeregisterCriticalServiceAfter string `json:",omitempty"`
}

// New starts a double on 127.0.0.1; Close stops it.
func New() *Server {
	s := &Server{
		index: 1, svcIndex: map[string]uint64{}, services: map[string]*service{}, checks: map[string]*check{},
		changed: make(chan struct{}), stop: make(chan struct{}),
		client: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}},
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /v1/agent/service/register", s.register)
	mux.HandleFunc("PUT /v1/agent/service/deregister/{id}", s.deregister)
	mux.HandleFunc("PUT /v1/agent/check/pass/{id}", s.ttlUpdate(Passing))
	mux.HandleFunc("PUT /v1/agent/check/warn/{id}", s.ttlUpdate(Warning))
	mux.HandleFunc("PUT /v1/agent/check/fail/{id}", s.ttlUpdate(Critical))
	mux.HandleFunc("PUT /v1/agent/check/update/{id}", s.checkUpdate)
	mux.HandleFunc("GET /v1/agent/services", s.agentServices)
	mux.HandleFunc("GET /v1/agent/checks", s.agentChecks)
	mux.HandleFunc("GET /v1/catalog/services", s.catalogServices)
	mux.HandleFunc("GET /v1/catalog/service/{name}", s.catalogService)
	mux.HandleFunc("GET /v1/health/service/{name}", s.healthService)
	mux.HandleFunc("GET /v1/status/leader", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, NodeAddress+":8300")
	})
	s.srv = httptest.NewServer(s.faults(mux))
	s.wg.Go(s.reap)
	return s
}

// URL is the base URL to give consul/api (Config.Address takes its host:port
// and Scheme "http").
func (s *Server) URL() string { return s.srv.URL }

// Addr is the double's host:port.
func (s *Server) Addr() string { return strings.TrimPrefix(s.srv.URL, "http://") }

// Close stops the server, the check runners and any blocked query.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	s.cancel()
	s.srv.CloseClientConnections()
	s.srv.Close()
	s.wg.Wait()
}

// SetDown makes every request fail with 500 (true) or be served again
// (false), as when the agent is unreachable or has no cluster leader.
func (s *Server) SetDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

// Index is the double's current index.
func (s *Server) Index() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.index
}

// SetCheckStatus sets a check's status as if it had just run.
func (s *Server) SetCheckStatus(checkID, status string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.checks[checkID]
	if c == nil {
		return fmt.Errorf("no check %q", checkID)
	}
	s.setStatusLocked(c, status, "set by the test")
	return nil
}

// Instance is one registered service instance with its aggregated status.
type Instance struct {
	ID, Name, Address string
	Port              int
	Tags              []string
	Meta              map[string]string
	Status            string // the worst of its checks (passing without checks)
}

// Instances lists the registered instances of service name by id.
func (s *Server) Instances(name string) []Instance {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Instance
	for _, id := range slices.Sorted(maps.Keys(s.services)) {
		sv := s.services[id]
		if sv.reg.Name != name {
			continue
		}
		out = append(out, Instance{
			ID: id, Name: name, Address: sv.reg.Address, Port: sv.reg.Port,
			Tags: slices.Clone(sv.reg.Tags), Meta: maps.Clone(sv.reg.Meta), Status: s.aggregateLocked(id),
		})
	}
	return out
}

func (s *Server) faults(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		down := s.down
		s.mu.Unlock()
		if down {
			http.Error(w, "Unexpected response code: 500 (No cluster leader)", http.StatusInternalServerError)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// bumpLocked records a change to service name.
func (s *Server) bumpLocked(name string) uint64 {
	s.index++
	s.svcIndex[name] = s.index
	s.svcIndex[""] = s.index // the services list
	close(s.changed)
	s.changed = make(chan struct{})
	return s.index
}

func (s *Server) register(w http.ResponseWriter, r *http.Request) {
	var reg registration
	if err := json.NewDecoder(r.Body).Decode(&reg); err != nil {
		http.Error(w, "Request decode failed: "+err.Error(), http.StatusBadRequest)
		return
	}
	if reg.Name == "" {
		http.Error(w, "Missing service name", http.StatusBadRequest)
		return
	}
	if reg.ID == "" {
		reg.ID = reg.Name
	}
	defs := reg.Checks
	if reg.Check != nil {
		defs = append([]checkDefinition{*reg.Check}, defs...)
	}
	for _, d := range defs {
		if err := d.validate(); err != nil {
			http.Error(w, "Invalid check: "+err.Error(), http.StatusBadRequest)
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	if old := s.services[reg.ID]; old != nil && old.reg.Name != reg.Name {
		s.removeLocked(reg.ID)
	}
	idx := s.bumpLocked(reg.Name)
	sv := s.services[reg.ID]
	if sv == nil {
		sv = &service{createIndex: idx}
		s.services[reg.ID] = sv
	}
	sv.reg, sv.modifyIndex = reg, idx
	// The registration replaces the service's checks.
	for id, c := range s.checks {
		if c.serviceID == reg.ID {
			close(c.stop)
			delete(s.checks, id)
		}
	}
	for i, d := range defs {
		id := d.CheckID
		if id == "" {
			id = "service:" + reg.ID
			if len(defs) > 1 {
				id += ":" + strconv.Itoa(i+1)
			}
		}
		name := d.Name
		if name == "" {
			name = "Service '" + reg.Name + "' check"
		}
		c := &check{id: id, name: name, serviceID: reg.ID, def: d, status: Critical, createIndex: idx, modifyIndex: idx, stop: make(chan struct{})}
		if d.Status != "" {
			c.status = d.Status
		}
		if c.status == Critical {
			c.criticalSince = time.Now()
		}
		if ttl := d.duration(d.TTL); ttl > 0 {
			c.ttlDeadline = time.Now().Add(ttl)
		}
		s.checks[id] = c
		if d.HTTP != "" {
			s.wg.Go(func() { s.runHTTP(c) })
		}
	}
}

func (d checkDefinition) validate() error {
	for _, v := range []string{d.Interval, d.Timeout, d.TTL, d.DeregisterCriticalServiceAfter} {
		if v == "" {
			continue
		}
		if _, err := time.ParseDuration(v); err != nil {
			return err
		}
	}
	switch {
	case d.HTTP != "" && d.Interval == "":
		return fmt.Errorf("HTTP check %q needs an Interval", d.HTTP)
	case d.HTTP == "" && d.TTL == "":
		return fmt.Errorf("the double runs only HTTP and TTL checks")
	}
	switch d.Status {
	case "", Passing, Warning, Critical:
	default:
		return fmt.Errorf("bad status %q", d.Status)
	}
	return nil
}

func (d checkDefinition) duration(v string) time.Duration {
	dur, _ := time.ParseDuration(v)
	return dur
}

// runHTTP runs an HTTP check every Interval until it is removed.
func (s *Server) runHTTP(c *check) {
	interval := c.def.duration(c.def.Interval)
	timeout := c.def.duration(c.def.Timeout)
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	method := c.def.Method
	if method == "" {
		method = http.MethodGet
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		status, output := s.probe(method, c.def.HTTP, timeout)
		s.mu.Lock()
		if s.checks[c.id] == c { // not removed or replaced meanwhile
			s.setStatusLocked(c, status, output)
		}
		s.mu.Unlock()
		select {
		case <-c.stop:
			return
		case <-s.stop:
			return
		case <-t.C:
		}
	}
}

func (s *Server) probe(method, url string, timeout time.Duration) (status, output string) {
	ctx, cancel := context.WithTimeout(s.ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return Critical, err.Error()
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return Critical, err.Error()
	}
	_ = resp.Body.Close()
	out := fmt.Sprintf("HTTP %s %s: %s", method, url, resp.Status)
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return Passing, out
	case resp.StatusCode == http.StatusTooManyRequests:
		return Warning, out
	}
	return Critical, out
}

// setStatusLocked changes a check's status; an unchanged status changes no
// index (as in Consul, where only a status change is a catalog write).
func (s *Server) setStatusLocked(c *check, status, output string) {
	if ttl := c.def.duration(c.def.TTL); ttl > 0 {
		c.ttlDeadline = time.Now().Add(ttl)
	}
	if c.status == status {
		c.output = output
		return
	}
	c.status, c.output = status, output
	if status == Critical {
		c.criticalSince = time.Now()
	} else {
		c.criticalSince = time.Time{}
	}
	name := ""
	if sv := s.services[c.serviceID]; sv != nil {
		name = sv.reg.Name
	}
	c.modifyIndex = s.bumpLocked(name)
}

// reap expires TTL checks and deregisters services critical for too long.
func (s *Server) reap() {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		now := time.Now()
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return
		}
		for _, c := range s.checks {
			if !c.ttlDeadline.IsZero() && now.After(c.ttlDeadline) && c.status != Critical {
				s.setStatusLocked(c, Critical, "TTL expired")
			}
			if after := c.def.duration(c.def.DeregisterCriticalServiceAfter); after > 0 && c.status == Critical &&
				!c.criticalSince.IsZero() && now.Sub(c.criticalSince) >= after {
				s.removeLocked(c.serviceID)
			}
		}
		s.mu.Unlock()
	}
}

// removeLocked deregisters a service and its checks.
func (s *Server) removeLocked(id string) bool {
	sv := s.services[id]
	if sv == nil {
		return false
	}
	delete(s.services, id)
	for cid, c := range s.checks {
		if c.serviceID == id {
			close(c.stop)
			delete(s.checks, cid)
		}
	}
	s.bumpLocked(sv.reg.Name)
	return true
}

func (s *Server) deregister(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.removeLocked(r.PathValue("id")) {
		http.Error(w, fmt.Sprintf("Unknown service ID %q. Ensure that the service ID is passed, not the service name.", r.PathValue("id")), http.StatusNotFound)
	}
}

func (s *Server) ttlUpdate(status string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.updateTTL(w, r.PathValue("id"), status, r.URL.Query().Get("note"))
	}
}

func (s *Server) checkUpdate(w http.ResponseWriter, r *http.Request) {
	var body struct{ Status, Output string }
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		http.Error(w, "Request decode failed: "+err.Error(), http.StatusBadRequest)
		return
	}
	switch body.Status {
	case Passing, Warning, Critical:
	default:
		http.Error(w, "Invalid check status: \""+body.Status+"\"", http.StatusBadRequest)
		return
	}
	s.updateTTL(w, r.PathValue("id"), body.Status, body.Output)
}

func (s *Server) updateTTL(w http.ResponseWriter, id, status, output string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.checks[id]
	switch {
	case c == nil:
		http.Error(w, fmt.Sprintf("Unknown check ID %q. Ensure that the check ID is passed, not the check name.", id), http.StatusNotFound)
	case c.def.TTL == "":
		http.Error(w, fmt.Sprintf("Check %q is not a TTL check", id), http.StatusInternalServerError)
	default:
		s.setStatusLocked(c, status, output)
	}
}

// aggregateLocked is a service's worst check status.
func (s *Server) aggregateLocked(serviceID string) string {
	worst := Passing
	for _, c := range s.checks {
		if c.serviceID != serviceID {
			continue
		}
		switch c.status {
		case Critical:
			return Critical
		case Warning:
			worst = Warning
		}
	}
	return worst
}

// block waits, for a blocking query, until the index of service name ("" for
// the services list) passes the requested one or the wait runs out, then
// returns the index to report.
func (s *Server) block(r *http.Request, name string) (uint64, error) {
	q := r.URL.Query()
	var after uint64
	if v := q.Get("index"); v != "" {
		var err error
		if after, err = strconv.ParseUint(v, 10, 64); err != nil {
			return 0, fmt.Errorf("invalid index %q", v)
		}
	}
	wait := defaultWait
	if v := q.Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			if n, nerr := strconv.Atoi(v); nerr == nil {
				d, err = time.Duration(n)*time.Second, nil
			}
		}
		if err != nil {
			return 0, fmt.Errorf("invalid wait %q", v)
		}
		if d > 0 {
			wait = min(d, maxWait)
		}
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		s.mu.Lock()
		idx, changed := max(s.svcIndex[name], 1), s.changed
		s.mu.Unlock()
		if after == 0 || idx > after {
			return idx, nil
		}
		select {
		case <-changed:
		case <-timer.C:
			return idx, nil
		case <-r.Context().Done():
			return idx, r.Context().Err()
		case <-s.stop:
			return idx, nil
		}
	}
}

// answer writes a blocking query's result with Consul's query headers.
func answer(w http.ResponseWriter, index uint64, v any) {
	h := w.Header()
	h.Set("X-Consul-Index", strconv.FormatUint(index, 10))
	h.Set("X-Consul-KnownLeader", "true")
	h.Set("X-Consul-LastContact", "0")
	writeJSON(w, v)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func hasTags(have []string, want []string) bool {
	for _, t := range want {
		if !slices.Contains(have, t) {
			return false
		}
	}
	return true
}

// matching lists the ids of service name's instances carrying every tag.
func (s *Server) matchingLocked(name string, tags []string) []string {
	var ids []string
	for _, id := range slices.Sorted(maps.Keys(s.services)) {
		if sv := s.services[id]; sv.reg.Name == name && hasTags(sv.reg.Tags, tags) {
			ids = append(ids, id)
		}
	}
	return ids
}

func (s *Server) catalogServices(w http.ResponseWriter, r *http.Request) {
	idx, err := s.block(r, "")
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	out := map[string][]string{"consul": {}}
	for _, sv := range s.services {
		out[sv.reg.Name] = append(out[sv.reg.Name], sv.reg.Tags...)
	}
	s.mu.Unlock()
	for name, tags := range out {
		slices.Sort(tags)
		out[name] = slices.Compact(tags)
	}
	answer(w, idx, out)
}

type nodeJSON struct {
	ID, Node, Address, Datacenter string
	TaggedAddresses               map[string]string
	Meta                          map[string]string
	CreateIndex, ModifyIndex      uint64
}

type agentServiceJSON struct {
	Kind                     string
	ID, Service              string
	Tags                     []string
	Meta                     map[string]string
	Port                     int
	Address                  string
	Weights                  map[string]int
	EnableTagOverride        bool
	Datacenter               string `json:",omitempty"`
	CreateIndex, ModifyIndex uint64 `json:",omitempty"`
}

type checkJSON struct {
	Node, CheckID, Name, Status, Notes, Output string
	ServiceID, ServiceName                     string
	ServiceTags                                []string
	Type                                       string
	CreateIndex, ModifyIndex                   uint64 `json:",omitempty"`
}

func (s *Server) serviceJSONLocked(id string) agentServiceJSON {
	sv := s.services[id]
	return agentServiceJSON{
		ID: id, Service: sv.reg.Name, Tags: nonNil(sv.reg.Tags), Meta: nonNilMap(sv.reg.Meta), Port: sv.reg.Port,
		Address: sv.reg.Address, Weights: map[string]int{"Passing": 1, "Warning": 1},
		CreateIndex: sv.createIndex, ModifyIndex: sv.modifyIndex,
	}
}

func (s *Server) checkJSONLocked(c *check) checkJSON {
	out := checkJSON{Node: NodeName, CheckID: c.id, Name: c.name, Status: c.status, Notes: c.def.Notes, Output: c.output,
		ServiceID: c.serviceID, ServiceTags: []string{}, Type: "ttl", CreateIndex: c.createIndex, ModifyIndex: c.modifyIndex}
	if c.def.HTTP != "" {
		out.Type = "http"
	}
	if sv := s.services[c.serviceID]; sv != nil {
		out.ServiceName, out.ServiceTags = sv.reg.Name, nonNil(sv.reg.Tags)
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return slices.Clone(s)
}

func nonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return maps.Clone(m)
}

func (s *Server) catalogService(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	idx, err := s.block(r, name)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	out := []map[string]any{}
	for _, id := range s.matchingLocked(name, r.URL.Query()["tag"]) {
		sv := s.serviceJSONLocked(id)
		out = append(out, map[string]any{
			"ID": "", "Node": NodeName, "Address": NodeAddress, "Datacenter": "dc1",
			"TaggedAddresses": map[string]string{}, "NodeMeta": map[string]string{},
			"ServiceID": sv.ID, "ServiceName": sv.Service, "ServiceAddress": sv.Address, "ServiceTags": sv.Tags,
			"ServiceMeta": sv.Meta, "ServicePort": sv.Port, "ServiceWeights": sv.Weights, "ServiceEnableTagOverride": false,
			"CreateIndex": sv.CreateIndex, "ModifyIndex": sv.ModifyIndex,
		})
	}
	s.mu.Unlock()
	answer(w, idx, out)
}

func (s *Server) healthService(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	idx, err := s.block(r, name)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	q := r.URL.Query()
	_, passingOnly := q["passing"]
	if v := q.Get("passing"); v == "0" || v == "false" {
		passingOnly = false
	}
	type entry struct {
		Node    nodeJSON
		Service agentServiceJSON
		Checks  []checkJSON
	}
	s.mu.Lock()
	out := []entry{}
	for _, id := range s.matchingLocked(name, q["tag"]) {
		if passingOnly && s.aggregateLocked(id) != Passing {
			continue
		}
		checks := []checkJSON{{Node: NodeName, CheckID: "serfHealth", Name: "Serf Health Status", Status: Passing,
			Output: "Agent alive and reachable", ServiceTags: []string{}, Type: "serf"}}
		for _, cid := range slices.Sorted(maps.Keys(s.checks)) {
			if c := s.checks[cid]; c.serviceID == id {
				checks = append(checks, s.checkJSONLocked(c))
			}
		}
		out = append(out, entry{
			Node: nodeJSON{Node: NodeName, Address: NodeAddress, Datacenter: "dc1",
				TaggedAddresses: map[string]string{}, Meta: map[string]string{}},
			Service: s.serviceJSONLocked(id), Checks: checks,
		})
	}
	s.mu.Unlock()
	answer(w, idx, out)
}

func (s *Server) agentServices(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	out := map[string]agentServiceJSON{}
	for id := range s.services {
		sv := s.serviceJSONLocked(id)
		sv.Datacenter, sv.CreateIndex, sv.ModifyIndex = "dc1", 0, 0
		out[id] = sv
	}
	s.mu.Unlock()
	writeJSON(w, out)
}

func (s *Server) agentChecks(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	out := map[string]checkJSON{}
	for id, c := range s.checks {
		cj := s.checkJSONLocked(c)
		cj.CreateIndex, cj.ModifyIndex = 0, 0
		out[id] = cj
	}
	s.mu.Unlock()
	writeJSON(w, out)
}
