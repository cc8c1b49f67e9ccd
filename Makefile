# etcd appliance. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Go lives in /usr/local/go on the machines this project is built on; a
# fresh shell may not have it on PATH yet. Recipes get it through PATH,
# $(shell) calls (which do not see exported variables) through GO.
GO := $(or $(shell command -v go),/usr/local/go/bin/go)
export PATH := $(dir $(GO)):$(PATH)

MODULE       := github.com/etcd-appliance/appliance
ETCD_VERSION := $(shell $(GO) list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3 | sed 's/^v//')
# REVISION is the package revision: the package version is ETCD_VERSION-REVISION.
REVISION     ?= 1
VERSION      := $(ETCD_VERSION)-$(REVISION)
COMMIT       := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)

# The same flags for every build and test keep the Go build cache warm (a
# cold etcd server build is ~85 s on 2 cores). Change them everywhere or
# nowhere.
export CGO_ENABLED := 0
export GOFLAGS     := -trimpath -buildvcs=false
LDFLAGS := -s -w \
	-X $(MODULE)/internal/version.Version=$(VERSION) \
	-X $(MODULE)/internal/version.Commit=$(COMMIT) \
	-X go.etcd.io/etcd/api/v3/version.GitSHA=$(COMMIT)

BIN := $(CURDIR)/bin
# Tests use these binaries instead of building their own.
export APPLIANCE_BIN_DIR := $(BIN)

# Package builds are reproducible: every file gets the commit's time.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
HOSTARCH := $(shell $(GO) env GOARCH)
ARCHES   ?= amd64 arm64
DIST     ?= dist
REPO_URL ?= https://repo.example.com/etcd

.PHONY: help build test test-stress run bench lint clean package release system-test

help: ## Show this help.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## Build bin/etcd (multi-call: also etcdctl, etcdutl, etcd-installer through links).
	@mkdir -p $(BIN)
	go build -ldflags '$(LDFLAGS)' -o $(BIN)/etcd ./cmd/etcd
	ln -sf etcd $(BIN)/etcdctl
	ln -sf etcd $(BIN)/etcdutl
	ln -sf etcd $(BIN)/etcd-installer

test: build ## Run unit and integration tests (real etcd members on loopback).
	go test -count=1 -timeout 30m ./...

RUNS ?= 5
test-stress: build ## make test's suite RUNS times in a row (default 5) with stress-ng loading every core beside it: timing assumptions show.
	@command -v stress-ng >/dev/null || { echo "test-stress needs stress-ng: apt-get install stress-ng (.ci/run installs it)"; exit 2; }
	@mkdir -p build; set -e; stress-ng --cpu $$(nproc) --timeout 0 --quiet & sp=$$!; trap "kill $$sp 2>/dev/null" EXIT; \
	for i in $$(seq $(RUNS)); do start=$$(date +%s); \
		if go test -count=1 -timeout 45m ./... >build/test-stress-$$i.log 2>&1; then r=pass; else r=FAIL; fi; \
		echo "run $$i of $(RUNS): $$r in $$(( $$(date +%s) - start ))s (build/test-stress-$$i.log)"; \
		[ $$r = pass ] || { grep -E -- '^(--- FAIL|FAIL|panic)' build/test-stress-$$i.log | head -20; exit 1; }; done

run: build ## Run a local three-member cluster from the bundled example (data in ./.run; Ctrl-C stops it).
	$(BIN)/etcd-installer run examples/local.toml --data-dir .run

bench: build ## Benchmarks against upstream etcd and size/speed targets (see BENCHMARKS.md).
	go build -ldflags '-s -w' -o $(BIN)/etcd-upstream go.etcd.io/etcd/server/v3
	go test -count=1 -run '^$$' -bench . -benchtime 2s ./render
	go test -count=1 -run '^$$' -bench . -benchtime 1x ./packaging
	UPSTREAM_ETCD=$(BIN)/etcd-upstream go test -count=1 -run '^$$' -bench ScrapeCost -benchtime 1x ./node
	go test -count=1 -run '^$$' -bench HandoverIntercept -benchmem ./node
	UPSTREAM_ETCD=$(BIN)/etcd-upstream BENCH_SCRAPE=15s BENCH_ROUNDS=20 go test -count=1 -run '^$$' -bench VersusUpstream -benchtime 1x -timeout 60m ./node
	go test -count=1 -run '^$$' -bench Migrate1GiB -benchtime 3x -timeout 30m ./workflow/migrate
	go test -count=1 -run '^$$' -bench ScheduledBackup1GiB -benchtime 3x -timeout 30m ./workflow/backup
	go test -count=1 -run '^$$' -bench Maintenance1GiB -benchtime 1x -timeout 30m ./workflow/maintenance
	go test -count=1 -run '^$$' -bench . -benchtime 1x ./e2e/lincheck

lint: ## gofmt and go vet.
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	go vet ./...

package: build ## Build the etcd deb and rpm for amd64 and arm64 into dist/, with SHA256SUMS.
	rm -rf $(DIST) && mkdir -p $(DIST)
	@set -e; bins=""; for a in $(ARCHES); do \
		if [ $$a = $(HOSTARCH) ]; then b=$(BIN)/etcd; else \
			b=$(BIN)/linux-$$a/etcd; echo "go build ($$a)"; \
			GOARCH=$$a go build -ldflags '$(LDFLAGS)' -o $$b ./cmd/etcd; fi; \
		bins="$$bins --binary $$a=$$b"; done; \
	go run ./packaging/cmd/etcd-package --version $(ETCD_VERSION) --revision $(REVISION) \
		--host-bin $(BIN) --out $(DIST) --mtime $(SOURCE_DATE_EPOCH) $$bins
	@cat $(DIST)/SHA256SUMS

release: package ## Packages plus signed apt and yum repositories in $(DIST)/repo (key: ETCD_SIGNING_KEY; else a throw-away test key).
	go run ./packaging/cmd/etcd-release --dist $(DIST) --out $(DIST)/repo --base-url $(REPO_URL) --mtime $(SOURCE_DATE_EPOCH)

system-test: build ## Boot systemd hosts in containers: packages, SSH provisioning, faults (root; KEEP=1 keeps them).
	$(MAKE) --no-print-directory package DIST=build/e2e/v1 ARCHES=$(HOSTARCH) REVISION=1
	$(MAKE) --no-print-directory package DIST=build/e2e/v2 ARCHES=$(HOSTARCH) REVISION=2
	go run ./e2e/cmd/system-test --dist build/e2e/v1 --dist2 build/e2e/v2
	cd vagrant && vagrant validate --ignore-provider && rm -rf .vagrant

clean: ## Remove build output.
	rm -rf $(BIN) dist build .run
