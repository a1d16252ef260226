# hero_router: the two commands you need are `make run` and `make test`.
CARGO ?= cargo
SOCKET_DIR ?=
NAME ?= example
SPEC ?= rich

.PHONY: run example install test fmt lint unit build release bench bench-instructions torture demo fuzz clean

## Serve on the default root ($HERO_SOCKET_DIR, else $PATH_SOCKET, else ~/hero/var/sockets).
## Built with the `quick` profile (optimised, no whole-program LTO): a first build in minutes.
run:
	$(CARGO) run --profile quick -p hero_router -- serve $(if $(SOCKET_DIR),--socket-dir $(SOCKET_DIR))

## Put hero_router on PATH: cargo installs it into $CARGO_INSTALL_ROOT/bin, by default
## ~/.cargo/bin (no root needed). The fully optimised `release` profile (fat LTO).
install:
	$(CARGO) install --locked --path crates/hero_router

## A small Hero service to call, on the same default root as `make run` (name `example`;
## NAME=calc SPEC=invalid|none to vary it).
example:
	$(CARGO) run --profile quick -p hero_example_service -- $(if $(SOCKET_DIR),--socket-dir $(SOCKET_DIR)) --name $(NAME) --spec $(SPEC)

## Everything CI checks: formatting, clippy with -D warnings, all tests.
test: fmt lint unit

fmt:
	$(CARGO) fmt --all --check

lint:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit:
	$(CARGO) test --workspace

build:
	$(CARGO) build --workspace

release:
	$(CARGO) build --release --workspace

## Benchmarks (see BENCHMARKS.md): scan scale, discovery latency and memory, the dashboard (1,000
## services in headless Chromium, CPU with 100 dashboards open), the proxy against nginx, then MCP
## tools/call against the routed call.
bench:
	bash scripts/bench.sh
	bash scripts/bench_dashboard.sh
	bash scripts/bench_proxy.sh
	bash scripts/bench_mcp.sh

bench-instructions:
	bash scripts/bench_instructions.sh

## The reaper torture harness: our reaper against the seed's algorithm.
torture:
	$(CARGO) run --release -p hero_torture -- $(TORTURE_ARGS)

## A small live demo on a temporary root, then the MCP gateway with a third-party client.
demo:
	bash scripts/demo.sh
	bash scripts/mcp_smoke.sh

clean:
	$(CARGO) clean

## The property tests, 1,000,000 random cases each (release): the codec, path and HTTP/1.1
## parsers never panic, head decisions never depend on how bytes arrive, chunked bodies round-trip,
## and the differential front-door test (what a service parses is what the client meant).
fuzz:
	HERO_FUZZ_CASES=1000000 $(CARGO) test --release -p hero_router --lib -- never_panic never_depend round_trip the_fast_path_answers_what_rmcp_answers stays_inert agrees_with --nocapture
	HERO_FUZZ_CASES=1000000 $(CARGO) test --release -p hero_router --test differential -- --nocapture
