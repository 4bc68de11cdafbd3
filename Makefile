# strata: the two commands of the README's quick start are `make demo` and
# `make test`; each installs what it needs first.
SHELL := /bin/bash
GO ?= go
export PATH := /usr/local/bin:/usr/local/go/bin:$(HOME)/go/bin:$(PATH)

# Packages whose tests run under the race detector (they use goroutines).
RACE_PKGS := ./repo/... ./commit/... ./checkout/... ./fsutil/... ./fetch/... ./pull/... ./sysroot/...

.PHONY: all build deps demo test test-go lint bench bench-quick clean

all: build

build:
	$(GO) build -o bin/strata ./cmd/strata

deps:
	scripts/install-deps.sh test

# The main job: build a small OS tree, commit it, show it, check it out, fsck it.
demo:
	scripts/install-deps.sh demo
	scripts/demo.sh

# The whole suite: vet, staticcheck, unit + interop tests, race tests.
test: deps lint test-go

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	@command -v staticcheck >/dev/null 2>&1 || $(GO) install honnef.co/go/tools/cmd/staticcheck@latest
	staticcheck ./...

test-go:
	$(GO) test -count=1 -timeout 20m ./...
	$(GO) test -count=1 -race -timeout 20m $(RACE_PKGS)

bench:
	scripts/install-deps.sh bench
	$(GO) run ./bench

bench-quick:
	scripts/install-deps.sh bench
	$(GO) run ./bench -trees small

clean:
	rm -rf bin demo/out
