# wharf — see README.md. `make run` serves on the embedded default;
# `make test` installs what the tests need (Debian, as root) and runs them all.
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
BIN      := bin/wharf
DATA_DIR ?= ./data
# Fuzz budgets are execution counts, not durations: a duration-based -fuzztime
# races Go's fuzz coordinator at its deadline and can fail with a bare
# "context deadline exceeded" and no failing input (go.dev/issue/75804, fixed
# only in Go 1.27). A count has no deadline to race; -timeout still bounds a hang.
FUZZTIME ?= 100000x
export GOFLAGS := -buildvcs=false

# Fuzz targets as package:Target, run briefly by `make test`, longer by `make fuzz`.
FUZZ_TARGETS := ./oci:FuzzParseDigest ./oci:FuzzValidateName ./oci:FuzzParseRange \
                ./oci:FuzzParseContentRange ./oci:FuzzParseManifest ./registry:FuzzParseRoute

.PHONY: all build dist desktop screenshots run test test-loaded test-run unit e2e deps lint fuzz fuzz-short bench stress clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/wharf

## desktop: build bin/wharf-desktop, the desktop app (cgo, against the GL/X11
## headers that `make deps` installs; the first build takes a few minutes)
DESKTOP_BIN := bin/wharf-desktop
desktop:
	CGO_ENABLED=1 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(DESKTOP_BIN) ./cmd/wharf-desktop

## screenshots: run bin/wharf-desktop under Xvfb against a local Distribution
## origin and save each screen in docs/screenshots/ (fails on a blank or
## duplicate screen)
screenshots: deps desktop
	mkdir -p docs/screenshots
	WHARF_E2E_REQUIRE=1 WHARF_DESKTOP_BIN=$(abspath $(DESKTOP_BIN)) WHARF_SCREENSHOTS=$(abspath docs/screenshots) \
	  $(GO) test -count=1 -v -run '^TestScreenshots$$' -timeout 10m ./cmd/wharf-desktop

## run: build and serve on the embedded default (:5000, data in ./data)
run: build
	./$(BIN) serve --data-dir $(DATA_DIR)

## test: install test dependencies, lint, unit + race tests, real-client e2e tests, short fuzzing
test: deps
	$(MAKE) test-run

## test-loaded: `make test` with stress-ng (--cpu 2 --io 1) loading the machine beside it
# The suite must pass on a busy machine too: tests wait for states, never
# for a time. stress-ng stops when the run ends, pass or fail.
test-loaded: deps
	bash scripts/with-load.sh $(MAKE) test-run

# test-run is `make test` without installing anything.
# The end-to-end packages run after the others (their real daemons are what
# loads the machine most) but side by side: every server they start listens
# on port 0 and the harness learns the port (from wharf's log, or from the
# kernel for programs that do not say), so no package can take a port
# another one was handed; slapd, which cannot pick its own port, retries
# with another when its bind fails.
test-run: lint
	$(GO) test -race -count=1 -timeout 15m $$($(GO) list ./... | grep -v /e2e)
	WHARF_E2E_REQUIRE=1 $(GO) test -race -count=1 -timeout 25m ./e2e/...
	$(MAKE) fuzz-short

deps:
	bash scripts/test-deps.sh

## dist: release artefacts into dist/ (scripts/dist.sh): static wharf, .deb,
## .rpm (nfpm), the FROM scratch image tarball, the wharf-desktop bundle
## (fyne package, cgo: minutes the first time) and SHA256SUMS. `make test`
## tests the .deb, .rpm and image (e2e/dist_*_test.go), and the desktop bundle's
## layout and Makefile on a stand-in binary (TestDistDesktopBundle).
dist:
	GO=$(GO) VERSION=$(VERSION) bash scripts/dist.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

unit:
	$(GO) test -race -short -count=1 ./...

e2e:
	WHARF_E2E_REQUIRE=1 $(GO) test -count=1 -v ./e2e/...

fuzz-short:
	@for t in $(FUZZ_TARGETS); do \
	  pkg=$${t%%:*}; name=$${t##*:}; \
	  echo "fuzz $$pkg $$name ($(FUZZTIME))"; \
	  $(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) -timeout 10m $$pkg || exit 1; \
	done

fuzz:
	$(MAKE) fuzz-short FUZZTIME=3000000x

## stress: the kill -9 fault test, hundreds of rounds (ROUNDS=200; WHARF_CRASH_SEED=N replays a run)
ROUNDS ?= 200
stress:
	WHARF_E2E_REQUIRE=1 WHARF_CRASH_ROUNDS=$(ROUNDS) $(GO) test -count=1 -v -timeout 2h -run '^TestCrashKill9$$' ./e2e/

bench:
	$(GO) test -run '^$$' -bench 'PushBlob|PullBlob' -benchtime 3x ./registry/
	$(GO) test -run '^$$' -bench WarmPullMetrics -benchtime 3000x ./registry/
	$(GO) test -run '^$$' -bench . ./cache/index/ ./server/

clean:
	rm -rf bin dist
