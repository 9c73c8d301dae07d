# kyvtel: the two commands that matter are `make test` (offline, any machine with Rust) and
# `make e2e` (the live suite: needs Docker, passwordless sudo and internet).
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
CARGO ?= cargo
KYVTEL := $(CARGO) run --quiet --
SCENARIO ?=
KYVERNO_CLI := .tools/bin/kyverno

.PHONY: test e2e doctor plan lint kyverno-cli tools

## test: everything offline: lint, the Kyverno CLI (built from Go modules when Go is present),
## the real-engine check of every scenario, and the whole cargo test suite.
test: lint kyverno-cli
	@if [ -x $(KYVERNO_CLI) ]; then \
	  echo "== kyvtel check (real Kyverno engine)"; \
	  KYVERNO_BIN=$(KYVERNO_CLI) $(KYVTEL) check; \
	  export KYVTEL_REQUIRE_KYVERNO=1; \
	else echo "== kyvtel check skipped: no Kyverno CLI (Go not found)"; fi; \
	KYVERNO_BIN=$(abspath $(KYVERNO_CLI)) $(CARGO) test --all-targets

## e2e: the main job. Provisions the pinned tools, then runs the whole catalog on kind
## (or one scenario: make e2e SCENARIO=documented-recipe). A missing prerequisite fails.
e2e:
	$(KYVTEL) tools install
	KYVTEL_REQUIRE_LIVE=1 $(CARGO) test --test e2e -- $(if $(SCENARIO),--exact $(SCENARIO))

## doctor: what a live run needs and what is missing.
doctor:
	$(KYVTEL) doctor

## plan: print the plan of a scenario (default: the documented recipe).
plan:
	$(KYVTEL) plan scenarios/$(or $(SCENARIO),documented-recipe).yaml

## lint: formatting and clippy, warnings are errors.
lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

## kyverno-cli: build the Kyverno CLI v1.19.0 from Go modules into .tools/bin/kyverno.
## The Go build and module caches stay outside the clone (~/go, ~/.cache/go-build).
## First build about 12 min on 2 cores, a cached rebuild about 30 s.
kyverno-cli:
	@if command -v go >/dev/null; then $(MAKE) --no-print-directory $(KYVERNO_CLI); \
	else echo "go not found: the Kyverno CLI is not built (real-engine tests will be ignored)"; fi

$(KYVERNO_CLI): tools/kyverno-cli/go.mod tools/kyverno-cli/go.sum
	@mkdir -p .tools/bin
	cd tools/kyverno-cli && GOFLAGS="-mod=readonly -buildvcs=false" go build -o $(CURDIR)/$(KYVERNO_CLI) github.com/kyverno/kyverno/cmd/cli/kubectl-kyverno

## tools: download the pinned kind, helm, telepresence, kubectl and kyverno into .tools/bin, plus the
## Telepresence versions and Kyverno charts the catalog's scenarios need (first-use digests: tools.lock).
tools:
	$(KYVTEL) tools install
