# wallphone: the wall phone agent. `make run` and `make test` are the two commands a fresh
# clone needs; both install what they use.

GO       ?= go
DATA     ?= .run/data
BIN      ?= bin
LDFLAGS  := -s -w
PKGS     := ./...
# Deadline for one test binary; the whole suite takes a few minutes on two cores.
TESTTIMEOUT ?= 15m

.PHONY: all run build test vet lint fmt-check bench fuzz prompts deps clean

all: build

# The agent on the simulated phone, with the demo facility written into $(DATA) on first run
# and a called party that answers and accepts by itself. Type help at the prompt.
run: deps
	$(GO) run ./cmd/wallphoned --board sim --data $(DATA) --callee auto

# linux/amd64, linux/arm64 and linux/arm (GOARM=7) binaries of every command.
build: deps
	@mkdir -p $(BIN)
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/linux-amd64/ ./cmd/...
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/linux-arm64/ ./cmd/...
	CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=7 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/linux-armv7/ ./cmd/...
	@ls -l $(BIN)/*/

# Everything CI checks: formatting, vet, staticcheck, the cross builds, and every test with
# the race detector (fuzz targets run their seed corpora).
test: deps fmt-check vet lint build
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout $(TESTTIMEOUT) $(PKGS)

vet:
	$(GO) vet $(PKGS)

lint:
	$(GO) tool staticcheck $(PKGS)

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

# Benchmarks, each beside its baseline in the same run.
bench: deps
	$(GO) test -run '^$$' -bench . -benchmem -count 1 $(PKGS)

# A short run of every fuzz target (FUZZTIME each).
FUZZTIME ?= 20s
fuzz: deps
	@for pkg in $$($(GO) list $(PKGS)); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

# Regenerate the spoken prompts from audio/prompts/catalog.tsv (needs espeak-ng and sox).
prompts:
	@command -v espeak-ng >/dev/null && command -v sox >/dev/null || \
	  { apt-get update -qq && apt-get install -y -qq espeak-ng sox; }
	scripts/gen-prompts.sh

# Go modules (and the pinned tools in go.mod) are fetched by the go command itself. From
# Debian: gcc for the race detector, and the stock age tool, which the tests use to show that
# any single segment decrypts without wallphone's code.
APT_NEEDS := gcc:gcc age:age
deps:
	@command -v $(GO) >/dev/null || { echo "Go is required (go.mod names the version)"; exit 1; }
	@missing=""; for pair in $(APT_NEEDS); do \
	  command -v $${pair%%:*} >/dev/null || missing="$$missing $${pair##*:}"; done; \
	if [ -n "$$missing" ]; then \
	  if command -v apt-get >/dev/null; then \
	    echo "installing:$$missing"; apt-get update -qq && apt-get install -y -qq $$missing; \
	  else echo "needed:$$missing"; exit 1; fi; fi
	@$(GO) mod download

clean:
	rm -rf $(BIN) .run
