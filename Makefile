# ganeti-gateway build, codegen and checks. `make help` lists the targets.
# CI (.ci/run) calls these same targets; see docs/ci.md.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

GO       ?= go
NPM      ?= npm
BUF      ?= node_modules/.bin/buf
FUZZTIME ?= 10s
BENCH    ?= .
LISTEN   ?= 127.0.0.1:5080
DATA_DIR ?= ./data
ARGS     ?=
# What `make build` stamps into bin/ganeti-gateway (internal/buildinfo).
# SOURCE_DATE_EPOCH, when set (reproducible builds), is the build date.
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
COMMIT   ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
DATE     ?= $(shell date -u $(if $(SOURCE_DATE_EPOCH),-d @$(SOURCE_DATE_EPOCH)) +%Y-%m-%dT%H:%M:%SZ)
BUILDINFO := github.com/ganeti-gateway/ganeti-gateway/internal/buildinfo
LDFLAGS  := -s -w -X $(BUILDINFO).Version=$(VERSION) -X $(BUILDINFO).Commit=$(COMMIT) -X $(BUILDINFO).Date=$(DATE)
# Ref that `make breaking` compares proto/ against.
BREAKING_REF ?= HEAD~1

# Debian's ganeti-htools-3.0 puts hbal/hspace/hscan and hail under
# /usr/lib/ganeti/3.0 (only the conflicting ganeti-htools/ganeti packages add
# /usr/bin links); append those dirs so tests can find the tools on PATH.
HTOOLS_DIRS := $(wildcard /usr/lib/ganeti/3.0/usr/bin /usr/lib/ganeti/3.0/usr/lib/ganeti/iallocators)
ifneq ($(HTOOLS_DIRS),)
export PATH := $(PATH):$(subst $() ,:,$(HTOOLS_DIRS))
endif

.PHONY: help build check-build bin/ganeti-gateway run test generate vendor lint staticcheck breaking check-generated bench bench-check bench-serve fuzz deploy-check ci

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 18

build: check-build bin/ganeti-gateway ## go build ./... and the static, stamped bin/ganeti-gateway

check-build: ## go build ./... (compiles every package)
	$(GO) build ./...

bin/ganeti-gateway: ## the static binary (CGO_ENABLED=0, -trimpath), version, commit and date stamped
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./cmd/ganeti-gateway

run: ## run the server on 127.0.0.1:5080 (plain HTTP, anonymous reads) with the embedded default cluster
	$(GO) run ./cmd/ganeti-gateway --insecure --allow-anonymous-reads --listen $(LISTEN) --data-dir $(DATA_DIR) $(ARGS)

test: ## go test -race -count=1 ./..., then the job engine's tests on a store that runs every update twice, and on etcd
	$(GO) test -race -count=1 ./...
	GANETI_TEST_STORE_RERUN=1 $(GO) test -race -count=1 ./internal/sim/jobs
	GANETI_GATEWAY_TEST_STORE=etcd $(GO) test -race -count=1 ./internal/sim/jobs

# buf and google-proto-files come from npm (package-lock.json); installed on demand.
node_modules/.bin/buf:
	$(NPM) ci --no-audit --no-fund

generate: node_modules/.bin/buf ## buf generate (proto/ -> gen/)
	$(BUF) generate

vendor: node_modules/.bin/buf ## refresh third_party/googleapis from node_modules/google-proto-files
	tools/vendor-googleapis.sh

lint: node_modules/.bin/buf ## buf format + buf lint + go vet + staticcheck + gofmt (gen/ excluded)
	$(BUF) format -d --exit-code proto
	$(BUF) lint
	$(GO) vet ./...
	$(MAKE) --no-print-directory staticcheck
	@files=$$(find . \( -path ./gen -o -path ./node_modules -o -path ./third_party -o -path ./.git -o -name testdata \) -prune \
	    -o -type f -name '*.go' -print); \
	bad=$$([ -z "$$files" ] || gofmt -l $$files); \
	if [ -n "$$bad" ]; then echo "gofmt: these files need 'gofmt -w':"; echo "$$bad"; exit 1; fi; \
	echo "gofmt: ok"

# staticcheck is a tool dependency in go.mod (`go tool staticcheck`): its
# version is pinned there. gen/ is generated code. Ganeti's capitalised
# error texts, which clients see byte for byte, are marked
# `//lint:ignore ST1005 Ganeti's wire text` where they are written.
staticcheck: ## staticcheck on every package but gen/
	$(GO) tool staticcheck $$($(GO) list ./... | grep -v '/gen/')

breaking: node_modules/.bin/buf ## buf breaking against BREAKING_REF (default HEAD~1)
	@if ! git rev-parse --verify -q '$(BREAKING_REF)^{commit}' >/dev/null; then \
	  echo "breaking: skipped: no commit $(BREAKING_REF) (first commit or shallow clone)"; \
	elif ! git cat-file -e '$(BREAKING_REF):proto' 2>/dev/null; then \
	  echo "breaking: skipped: proto/ did not exist in $(BREAKING_REF)"; \
	else \
	  echo "$(BUF) breaking --against '.git#ref=$(BREAKING_REF)'"; \
	  $(BUF) breaking --against '.git#ref=$(BREAKING_REF)'; \
	  echo "breaking: ok (against $(BREAKING_REF))"; \
	fi

check-generated: generate ## fail if gen/ differs from what buf generate produces
	@if ! git diff --quiet -- gen/; then \
	  echo "check-generated: gen/ is stale; run 'make generate' and commit gen/:"; \
	  git diff --stat -- gen/; git diff -- gen/ | head -n 200; exit 1; \
	fi; \
	untracked=$$(git ls-files --others --exclude-standard -- gen/); \
	if [ -n "$$untracked" ]; then \
	  echo "check-generated: untracked generated files; 'git add' them:"; echo "$$untracked"; exit 1; \
	fi; \
	echo "check-generated: gen/ is up to date"

bench: ## go test -bench . -benchmem ./... (BENCH=regexp)
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchmem ./...

bench-check: ## every benchmark once (-benchtime 1x): a benchmark that no longer runs fails here, not when someone measures
	$(GO) test -run '^$$' -bench . -benchtime 1x ./...

bench-serve: ## the whole-path benchmarks (GET /2/info, GetInfo, bulk lists of 1,000 and 10,000 instances, job round trip), with allocs/op
	$(GO) test -run '^$$' -bench 'Serve' -benchmem ./server

fuzz: ## run every Fuzz target for FUZZTIME each (default 10s)
	GO='$(GO)' FUZZTIME='$(FUZZTIME)' tools/fuzz.sh

deploy-check: ## check deploy/: systemd-analyze verify, buildah image + podman run, Kubernetes manifests (tools/deploy-check.sh)
	GO='$(GO)' tools/deploy-check.sh

ci: ## run the CI script locally (.ci/run)
	bash .ci/run
