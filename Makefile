# flashreturn: see README.md.
GO ?= go
BIN := bin
PKGS := ./...

.PHONY: all build run tools test test-cluster test-short lint bench bench-micro bench-scale bench-sync clean fmt dashboards

all: build

build:
	$(GO) build -o $(BIN)/flashreturnd ./cmd/flashreturnd
	$(GO) build -o $(BIN)/loadgen ./cmd/loadgen

## run: build and start the whole system (embedded NATS + JetStream, Badger
## state under ./data, HTTP on 127.0.0.1:8080, NATS on 127.0.0.1:4222).
run: build
	./$(BIN)/flashreturnd --data-dir ./data

## tools: best effort: install Prometheus and Chromium (Debian packages)
## for the operator tests, which skip with a message when they are missing.
tools:
	@if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 && command -v chromium >/dev/null 2>&1; then :; \
	else sh deploy/install-tools.sh >/tmp/flashreturn-install-tools.log 2>&1 \
	  && echo "installed prometheus and chromium" \
	  || echo "could not install prometheus/chromium (see /tmp/flashreturn-install-tools.log); their tests will skip"; fi

## test: every test, with the race detector (CI runs this).
test: tools
	$(GO) vet $(PKGS)
	$(GO) test -race -count=1 -timeout 15m $(PKGS)

## test-cluster: only the cluster tests (3-node NATS, kill -9 of a daemon
## and a NATS node, handover, fencing, query routing), verbose; `make test`
## runs them too.
test-cluster:
	$(GO) test -race -count=1 -timeout 10m -run 'Cluster' -v ./cmd/flashreturnd/ ./pipeline/

test-short:
	$(GO) test -count=1 -short $(PKGS)

## lint: gofmt, vet, staticcheck, and the module-wide checks of
## internal/lint (tracked files, allowed imports, sizes, comment share,
## package docs; every violation is listed).
lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet $(PKGS)
	$(GO) run honnef.co/go/tools/cmd/staticcheck@latest $(PKGS)
	$(GO) test -count=1 ./internal/lint/

fmt:
	gofmt -w $$(git ls-files '*.go')

## dashboards: regenerate deploy/grafana/flashreturn.json from the Go code
## in deploy/grafana (Grafana's Foundation SDK); go test ./deploy/grafana/
## fails until the committed JSON matches.
dashboards:
	$(GO) generate ./deploy/...

## bench-micro: the Go microbenchmarks only.
bench-micro:
	$(GO) test -run '^$$' -bench . -benchmem ./internal/... ./state/...

## bench: microbenchmarks, relay ceiling vs flashreturnd, loadgen double11, a
## faulted run (loadgen --spawn with three kill -9s);
## appends a dated section to bench/RESULTS.md (about 15 minutes).
bench: build
	bash bench/run.sh

## bench-scale: scale-out figures (issue 9): 1 and 3 real nats-server
## processes, 1 and 2 daemons in cluster mode, events/s and CPU per event
## per process; appends to bench/RESULTS.md (about 10 minutes).
bench-scale: build
	bash bench/scale.sh

## bench-sync: the cost of --js-sync always against the default fsync,
## flashreturnd's maximum rate, alternating, same run; appends to
## bench/RESULTS.md (about 3 minutes).
bench-sync: build
	bash bench/sync.sh

clean:
	rm -rf $(BIN)
