# strata: the two commands of the README's quick start are `make demo` and
# `make test`; each installs what it needs first.
SHELL := /bin/bash
GO ?= go
export PATH := /usr/local/bin:/usr/local/go/bin:$(HOME)/go/bin:$(PATH)

# Packages whose tests run under the race detector (they use goroutines).
RACE_PKGS := ./repo/... ./commit/... ./checkout/... ./fsutil/... ./fetch/... ./pull/... ./sysroot/... ./fleetlock/... ./updates/... ./container/...

.PHONY: all build deps demo soak test test-go lint bench bench-quick bench-compose bench-oci clean

all: build

build:
	$(GO) build -o bin/strata ./cmd/strata

deps:
	scripts/install-deps.sh test

# The main job: a Debian 12 with systemd composed by strata, installed by
# `strata install to-disk`, booted by systemd-boot under OVMF in QEMU,
# upgraded from inside the guest, rolled back (docs/boot.md section 6).
# The composed OS is cached under $STRATA_CACHE (default .cache): the first
# run composes it (about 10 minutes), later runs take about 3.
# `make demo V=1` also prints every boot's serial console.
demo:
	scripts/install-deps.sh demo
	scripts/demo.sh $(if $(V),-v)

# 100 power cuts during deploys in QEMU (the e2e suite does 20).
soak:
	scripts/install-deps.sh test
	STRATA_POWERCUTS=100 $(GO) test -count=1 -timeout 90m -run 'TestPowerCut$$' -v ./e2e/

# The whole suite: vet, staticcheck, unit + interop tests, race tests.
test: deps lint test-go

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	@command -v staticcheck >/dev/null 2>&1 || $(GO) install honnef.co/go/tools/cmd/staticcheck@latest
	staticcheck ./...

test-go:
	$(GO) test -count=1 -timeout 58m ./...
	$(GO) test -count=1 -race -timeout 20m $(RACE_PKGS)

bench:
	scripts/install-deps.sh bench
	$(GO) run ./bench

# Wall time of strata compose on the test OS (full, from the lock, after a
# one-file change, a one-package change as a layer on the previous version's
# ref, and one to the base's own package list); see docs/compose.md.
bench-compose:
	scripts/install-deps.sh bench
	bench/compose.sh

# A realistic Debian update fetched by ostree pull, an ostree static delta
# and strata's image update: requests and bytes (bench/README.md).
bench-oci:
	scripts/install-deps.sh bench
	$(GO) run ./bench -oci-update

bench-quick:
	scripts/install-deps.sh bench
	$(GO) run ./bench -trees small

clean:
	rm -rf bin demo/out
