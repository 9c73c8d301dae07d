# kyvtel: the two commands that matter are `make test` (lint, every offline test, and the whole
# catalog on the local provider: real control plane, Kyverno and Telepresence injector built from Go
# modules; needs Rust, Go and Linux namespaces, never Docker) and `make e2e` (the main job: kind where
# Docker is usable, the local provider otherwise).
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
CARGO ?= cargo
KYVTEL := $(CARGO) run --quiet --
SCENARIO ?=
KYVERNO_CLI := .tools/local/kyverno-cli

.PHONY: test e2e faults doctor plan lint actionlint components kyverno-cli tools bench

## test: lint, the local components (built from Go modules: what is missing only), the real-engine
## check of every scenario, and the whole cargo test suite, which runs the catalog on the local
## provider (explicitly: never kind, never auto). Where the local provider cannot run, this fails
## and names what is missing; KYVTEL_SKIP_LOCAL=1 (never set by .ci/run) skips only that, and says so.
test: lint
	@if [ "$${KYVTEL_SKIP_LOCAL:-}" = 1 ]; then \
	  echo "== KYVTEL_SKIP_LOCAL=1: the local provider's catalog run is SKIPPED (reported ignored)"; \
	else \
	  echo "== local components (kyvtel tools build)"; \
	  $(KYVTEL) tools build; \
	fi
	@if [ -x $(KYVERNO_CLI) ]; then \
	  echo "== kyvtel check (real Kyverno engine)"; \
	  KYVERNO_BIN=$(KYVERNO_CLI) $(KYVTEL) check; \
	  export KYVTEL_REQUIRE_KYVERNO=1; \
	else echo "== kyvtel check skipped: no Kyverno CLI (KYVTEL_SKIP_LOCAL=1)"; fi; \
	KYVERNO_BIN=$(abspath $(KYVERNO_CLI)) KYVTEL_E2E_PROVIDER=local KYVTEL_REQUIRE_LIVE=1 KYVTEL_STRICT_MODEL=1 $(CARGO) test --all-targets

## e2e: the main job: the whole catalog (or one scenario: make e2e SCENARIO=documented-recipe) on
## kind where Docker is usable (pinned tools provisioned first), else on the local provider
## (components built first). A missing prerequisite fails. UNCONFINED=1: where no namespace can be
## made, the local provider runs with --unconfined (the injector's steps skipped, with the reason).
UNCONFINED ?=
e2e:
	KYVTEL_REQUIRE_LIVE=1 $(if $(filter 1,$(UNCONFINED)),KYVTEL_UNCONFINED=1) $(CARGO) test --test e2e -- $(if $(SCENARIO),--exact $(SCENARIO))

## faults: the whole fault matrix on the local provider (tests/fixtures/faults/local.yaml; `make
## test` runs its makeTest cases): each fault injected into the real components or into kyvtel, and
## what must hold after it; prints the table. Root lets the disk-full cases mount their tmpfs.
faults:
	$(KYVTEL) tools build
	KYVTEL_FAULTS=all KYVTEL_REQUIRE_LIVE=1 $(CARGO) test --test faults -- --nocapture

## components: build the local provider's components from Go modules into .tools/local (what is
## missing only; warm = no go invocation). First build about 15 min on 2 cores, with Go's caches
## outside the clone (~/go/pkg/mod, ~/.cache/go-build).
components:
	$(KYVTEL) tools build

## bench: time the local provider (cold stack, each scenario, warm builds) and print a table.
bench:
	$(CARGO) build --release --quiet
	./target/release/kyvtel tools build
	scripts/bench

## doctor: what a live run needs and what is missing.
doctor:
	$(KYVTEL) doctor

## plan: print the plan of a scenario (default: the documented recipe).
plan:
	$(KYVTEL) plan scenarios/$(or $(SCENARIO),documented-recipe).yaml

## lint: formatting and clippy, warnings are errors; both GitHub workflows with actionlint, built
## from its Go module (wrapper tools/actionlint; never the PyPI wrapper, which downloads at install).
lint: actionlint
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings
	.tools/bin/actionlint -shellcheck= -pyflakes= -oneline .github/workflows/ci.yml .github/workflows/nightly.yml

## actionlint: build actionlint v1.7.12 from its Go module into .tools/bin (what is missing only).
actionlint: .tools/bin/actionlint
.tools/bin/actionlint: tools/actionlint/go.mod tools/actionlint/go.sum
	mkdir -p .tools/bin
	cd tools/actionlint && go build -trimpath -o ../../.tools/bin/actionlint github.com/rhysd/actionlint/cmd/actionlint

## kyverno-cli: the Kyverno CLI v1.19.1, built with the admission controller from one wrapper
## module (tools/kyverno) into .tools/local/kyverno-cli.
kyverno-cli: components

## tools: download the pinned kind, helm, telepresence, kubectl and kyverno into .tools/bin, plus the
## Telepresence versions and Kyverno charts the catalog's scenarios need (first-use digests: tools.lock).
tools:
	$(KYVTEL) tools install
