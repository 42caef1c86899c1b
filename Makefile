# Concord — one Makefile for the whole go.work workspace.
# `make` (or `make help`) lists the targets.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DELETE_ON_ERROR:
.DEFAULT_GOAL := help
MAKEFLAGS += --no-builtin-rules --no-print-directory

GO ?= go
TMP := $(CURDIR)/.tmp
BIN := $(TMP)/bin
export PATH := $(BIN):$(PATH)

# Every module of the workspace, in dependency order.
MODULES := proto sdk/go services/replica services/gateway services/authd services/backupd tools tests

# Pinned tools (see ../shared/TOOLCHAIN.md for why these versions).
BUF_VERSION := v1.75.0
PROTOC_GEN_GO_VERSION := v1.36.12
PROTOC_GEN_CONNECT_GO_VERSION := v1.21.1
PROTOC_GEN_OPENAPI_VERSION := v0.7.1
GOLANGCI_LINT_VERSION := v2.15.0
# Sources of the third-party protos (Go modules on the proxy).
PROTOVALIDATE_MODULE := github.com/bufbuild/protovalidate@v1.2.2
GNOSTIC_MODULE := github.com/google/gnostic@$(PROTOC_GEN_OPENAPI_VERSION)

TEST_TIMEOUT ?= 25m
TESTFLAGS ?=
CONCORD_DATA_DIR ?= $(CURDIR)/data/dev

.PHONY: help
help: ## Describe the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sort | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

# --- tools -----------------------------------------------------------------
# Each tool is installed into .tmp/bin; a stamp file names the pinned version so
# a version bump reinstalls it.
define go-tool
$(BIN)/.$(1)-$(3):
	@mkdir -p $(BIN)
	@echo "installing $(1) $(3)"
	GOBIN=$(BIN) $(GO) install $(2)@$(3)
	@touch $$@
TOOLS += $(BIN)/.$(1)-$(3)
endef
$(eval $(call go-tool,buf,github.com/bufbuild/buf/cmd/buf,$(BUF_VERSION)))
$(eval $(call go-tool,protoc-gen-go,google.golang.org/protobuf/cmd/protoc-gen-go,$(PROTOC_GEN_GO_VERSION)))
$(eval $(call go-tool,protoc-gen-connect-go,connectrpc.com/connect/cmd/protoc-gen-connect-go,$(PROTOC_GEN_CONNECT_GO_VERSION)))
$(eval $(call go-tool,protoc-gen-openapi,github.com/google/gnostic/cmd/protoc-gen-openapi,$(PROTOC_GEN_OPENAPI_VERSION)))
$(eval $(call go-tool,golangci-lint,github.com/golangci/golangci-lint/v2/cmd/golangci-lint,$(GOLANGCI_LINT_VERSION)))

.PHONY: tools
tools: $(TOOLS) ## Install the pinned tools into .tmp/bin

# --- code generation ---------------------------------------------------------
.PHONY: third-party
third-party: ## Refresh third_party/ protos from the pinned Go modules
	@dir=$$($(GO) mod download -json $(PROTOVALIDATE_MODULE) | sed -n 's/.*"Dir": "\(.*\)".*/\1/p'); \
	mkdir -p third_party/buf/validate; \
	cp $$dir/proto/protovalidate/buf/validate/validate.proto third_party/buf/validate/; \
	dir=$$($(GO) mod download -json $(GNOSTIC_MODULE) | sed -n 's/.*"Dir": "\(.*\)".*/\1/p'); \
	mkdir -p third_party/google/api; \
	cp $$dir/cmd/protoc-gen-openapi/examples/google/api/annotations.proto $$dir/cmd/protoc-gen-openapi/examples/google/api/http.proto third_party/google/api/; \
	chmod -R u+w third_party

.PHONY: generate
generate: $(TOOLS) third-party ## Regenerate protos (Go, Connect, OpenAPI)
	rm -rf proto/gen/go proto/gen/openapi
	buf generate
	gofmt -w proto/gen/go

.PHONY: checkgenerate
checkgenerate: generate ## Fail if `make generate` changes anything
	@if [ -n "$$(git status --porcelain -- proto third_party)" ]; then \
		git status --porcelain -- proto third_party; git diff --stat -- proto third_party; \
		echo "generated code is stale: run make generate and commit"; exit 1; fi

# --- quality -----------------------------------------------------------------
.PHONY: lint
lint: $(TOOLS) ## gofmt, go vet, golangci-lint, buf lint, buf format
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^proto/gen/')); \
		if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@for m in $(MODULES); do echo "vet + golangci-lint: $$m"; \
		(cd $$m && $(GO) vet ./... && golangci-lint run ./...); done
	buf lint
	buf format -d --exit-code proto

.PHONY: test
test: ## Run every module's tests with -race (the CI test command)
	@for m in $(filter-out sdk/go,$(MODULES)); do echo "=== go test $$m"; \
		(cd $$m && $(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) $(TESTFLAGS) ./...); done
	@echo "=== go test sdk/go (GOWORK=off, as users build it)"
	cd sdk/go && GOWORK=off $(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) $(TESTFLAGS) ./...
	@echo "=== go test third_party/hashicorp/raft (Concord's own tests of its patches)"
	cd third_party/hashicorp/raft && GOWORK=off $(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) -run '^TestConcord' .
	@echo "=== benchmarks, once each"
	@$(MAKE) bench

.PHONY: bench
bench: ## Run the Go benchmarks once (-benchtime=1x) so they keep compiling
	@for m in $(MODULES); do (cd $$m && $(GO) test -run '^$$' -bench . -benchtime 1x ./... | sed '/^?/d' ); done

BENCH_SECONDS ?= 30
.PHONY: bench-compare
bench-compare: ## 3-node etcd vs 3-node Concord side by side (BENCH_SECONDS per run; BENCH_REPLICA_ARGS="--log-store bolt" for extra replica flags)
	@command -v etcd >/dev/null || { apt-get update -qq && apt-get install -y -qq etcd-server; }
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/replica ./services/replica/cmd/replica
	$(GO) build -o $(BIN)/concord-bench ./tools/cmd/concord-bench
	$(BIN)/concord-bench compare --replica-bin $(BIN)/replica --etcd-bin $$(command -v etcd) --duration $(BENCH_SECONDS)s \
		--replica-args '$(BENCH_REPLICA_ARGS)'

FUZZTIME ?= 60s
.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME each (seed corpora in testdata/fuzz)
	@for m in $(MODULES); do (cd $$m && for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "=== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; done); done

.PHONY: tidy
tidy: ## go work sync + go mod tidy in every module
	$(GO) work sync
	@for m in $(MODULES); do (cd $$m && $(GO) mod tidy); done

# --- running ------------------------------------------------------------------
.PHONY: build
build: ## Build every binary into .tmp/bin
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./tools/cmd/... ./services/replica/cmd/replica ./services/gateway/cmd/gateway

.PHONY: run
run: build ## Start the dev stack: 3 replicas + gateway on 127.0.0.1:4000 (data in ./data/dev)
	exec $(BIN)/concord-dev

.PHONY: clean
clean: ## Remove build output, tools and dev data
	rm -rf $(TMP) data

# --- chaos: tests/chaos (issue 6) ----------------------------------------------
# Every scenario CHAOS_RUNS times with CHAOS_SECONDS of load; CHAOS_SEED reruns
# a seed (run r uses CHAOS_SEED+r), CHAOS_SCENARIO (a regexp) picks scenarios.
# A failed run leaves porcupine's HTML and the replica logs under CHAOS_OUT.
CHAOS_RUNS ?= 5
CHAOS_SECONDS ?= 30
CHAOS_SEED ?=
CHAOS_SCENARIO ?=
CHAOS_OUT ?= $(TMP)/chaos
CHAOS_TIMEOUT ?= $(shell echo $$(( $(CHAOS_RUNS) * 30 * ($(CHAOS_SECONDS) + 90) + 600 )))s

.PHONY: test-chaos
test-chaos: ## Chaos + linearizability suite (CHAOS_RUNS=5 CHAOS_SECONDS=30 CHAOS_SEED= CHAOS_SCENARIO=)
	@mkdir -p $(CHAOS_OUT)
	@rm -f $(CHAOS_OUT)/summary.json
	@rc=0; cd tests/chaos && CHAOS_RUNS='$(CHAOS_RUNS)' CHAOS_SECONDS='$(CHAOS_SECONDS)' CHAOS_SEED='$(CHAOS_SEED)' \
		CHAOS_SCENARIO='$(CHAOS_SCENARIO)' CHAOS_OUT='$(CHAOS_OUT)' CHAOS_SUMMARY='$(CHAOS_OUT)/summary.json' \
		$(GO) test -count=1 -timeout $(CHAOS_TIMEOUT) -run '^TestChaos$$' || rc=$$?; \
		cat '$(CHAOS_OUT)/summary.json' 2>/dev/null || echo '{"error":"the chaos suite did not finish"}'; exit $$rc
