GO       ?= go
BIN      ?= bin
PROMTOOL ?= promtool
AMTOOL   ?= amtool
GOFLAGS_TEST ?= -count=1
# The packages `make build` builds into $(BIN).
CMDS     ?= ./cmd/...

# Version stamping, as the Prometheus projects do (promu): --version and the
# *_build_info metrics show these.
VERSION    := $(shell cat VERSION)
REVISION   ?= $(shell git rev-parse HEAD 2>/dev/null)
BRANCH     ?= $(shell git rev-parse --abbrev-ref HEAD 2>/dev/null)
BUILD_USER ?= $(shell id -un 2>/dev/null)@$(shell hostname 2>/dev/null)
BUILD_DATE ?= $(shell date -u +%Y%m%d-%H:%M:%S)
VERSION_PKG := github.com/prometheus/common/version
LDFLAGS := -X $(VERSION_PKG).Version=$(VERSION) \
	-X $(VERSION_PKG).Revision=$(REVISION) \
	-X $(VERSION_PKG).Branch=$(BRANCH) \
	-X $(VERSION_PKG).BuildUser=$(BUILD_USER) \
	-X $(VERSION_PKG).BuildDate=$(BUILD_DATE)

# Every test: static checks, unit and lab tests, rule tests, end to end.
.PHONY: test
test: deps lint unit rules e2e

.PHONY: all
all: build test

.PHONY: deps
deps:
	./scripts/install-deps.sh

.PHONY: build
build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/ $(CMDS)

.PHONY: lint
lint:
	@unformatted="$$(gofmt -l $$(git ls-files '*.go'))"; \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	GO=$(GO) ./scripts/golangci-lint.sh run ./...
	$(PROMTOOL) check rules rules/*.yml
	$(PROMTOOL) check config deploy/prometheus/prometheus.yml
	$(AMTOOL) check-config deploy/alertmanager/alertmanager.yml

.PHONY: unit
# The remediator's suite runs twice: on the bbolt journal, then on etcd
# (a real one-member cluster per test), so both implementations of
# journal.Journal pass the same tests.
unit:
	$(GO) test $(GOFLAGS_TEST) -race -timeout 20m ./...
	XSHA_TEST_JOURNAL=etcd $(GO) test $(GOFLAGS_TEST) -race -timeout 20m ./remediator/

.PHONY: rules
rules:
	$(PROMTOOL) check rules rules/*.yml
	$(PROMTOOL) test rules rules/tests/*.yml

# End to end: the lab, exporter, remediator, and real Prometheus and
# Alertmanager heal pools by themselves.
.PHONY: e2e
e2e: deps build
	XSHA_E2E=1 $(GO) test $(GOFLAGS_TEST) -timeout 40m -v ./test/e2e/

# The demo: the same stack, printing the seed's timeline. Ctrl-C ends it.
.PHONY: demo
demo: deps build
	$(GO) run ./test/e2e/demo

.PHONY: bench
# Scrape cost, XAPI load and detection latency on one pool, then one
# exporter against a generated fleet of 200 pools (about ten minutes) and
# three shards of it; each prints its figures.
bench:
	$(GO) test -run '^$$' -bench . -benchtime 3x ./exporter/
	XSHA_FLEET=1 $(GO) test -count=1 -timeout 40m -run '^(TestFleetCost|TestShardsWatchEveryPoolOnce)$$' -v ./exporter/
	XSHA_BENCH=1 $(GO) test -count=1 -timeout 15m -v -run '^TestBench' ./remediator/ | grep -E 'bench_test|^(ok|FAIL|---)'

.PHONY: fuzz
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecodeRequest -fuzztime 30s ./sim/xapisim/
	$(GO) test -run '^$$' -fuzz FuzzWebhook -fuzztime 30s ./remediator/

.PHONY: clean
clean:
	rm -rf $(BIN)

# The webhook token shared by Alertmanager and the remediator in the compose stack.
.PHONY: compose-secrets
compose-secrets:
	@test -s deploy/secrets/webhook-token || (umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > deploy/secrets/webhook-token)
