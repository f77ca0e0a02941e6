# wallphone: the wall phone agent. `make run` and `make test` are the two commands a fresh
# clone needs; both install what they use.

GO       ?= go
DATA     ?= .run/data
BIN      ?= bin
# VERSION=7 stamps the builds with the firmware version they are published as (wallphoned
# --version, its start-up line and the console's hello say it); without it, the commit.
VERSION  ?=
LDFLAGS  := -s -w $(if $(VERSION),-X github.com/wallphone/wallphone/internal/version.stamp=$(VERSION))
PKGS     := ./...
# Deadline for one test binary; the whole suite takes a few minutes on two cores.
TESTTIMEOUT ?= 15m

.PHONY: all run run-update install go-deps build build-nocgo build-cgo test test-arm test-boot vet lint fmt-check bench fuzz soak-firmware chaos soak prompts deps clean

all: build

# The agent on the simulated phone, with a called party that answers and accepts by itself.
# wallphonectl makes the demo facility beside $(DATA) (kept once made; the phone binary signs
# nothing), which the phone is enrolled in at its first run. Type help at the prompt.
# CONSOLE=PORT serves the provisioning console there too (a pty from socat, say; README);
# FLAGS passes more flags to wallphoned (FLAGS='--update-interval 1m' sees a publish soon).
# It needs only Go: the simulated phone is pure Go, so nothing is installed with apt-get.
# Both are built into $(RUNBIN) and the phone is exec'd, not started with go run: the go
# command exits 1 after an interrupt whatever its child returned, so Ctrl-C, which stops the
# phone cleanly (exit status 0), would end make with "Error 1".
CONSOLE  ?=
FLAGS    ?=
RUNBIN   ?= .run/bin
run: go-deps
	CGO_ENABLED=0 $(GO) build -o $(RUNBIN)/ ./cmd/wallphoned ./cmd/wallphonectl
	$(RUNBIN)/wallphonectl demo init $(DATA)-keys
	exec $(RUNBIN)/wallphoned --board sim --data $(DATA) --callee auto $(if $(CONSOLE),--console $(CONSOLE)) $(FLAGS)

# The simulated phone's firmware update end to end, narrated: version 2 published, installed
# into the other slot, booted on trial and committed; then a version 3 that does not start,
# tried up to the bootloader's limit and rolled back (scripts/update-demo.sh; its own data
# in .run/update).
run-update: go-deps
	GO=$(GO) scripts/update-demo.sh

# wallphoned and wallphonectl for this machine, pure Go, into $(GOBIN) (or $(go env GOPATH)/bin).
install: go-deps
	CGO_ENABLED=0 $(GO) install ./cmd/...

# linux/amd64, linux/arm64 and linux/arm (GOARM=7) binaries of every command: pure Go here,
# and with cgo and PortAudio (the real handset) by build-cgo.
build: build-nocgo build-cgo

build-nocgo: deps
	@mkdir -p $(BIN)
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/linux-amd64/ ./cmd/...
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/linux-arm64/ ./cmd/...
	CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=7 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/linux-armv7/ ./cmd/...
	@ls -l $(BIN)/*/

# cgo with a cross compiler and the target's pkg-config (which finds the target's PortAudio,
# installed through multiarch): $(call cgo_env,GOARCH,GNU triplet[,GOARM]).
cgo_env = CGO_ENABLED=1 GOOS=linux GOARCH=$(1) $(if $(3),GOARM=$(3)) CC=$(2)-gcc PKG_CONFIG=$(2)-pkg-config

# The same three with cgo and PortAudio (-tags portaudio): commands that drive a real handset,
# linked against the board's libportaudio2. scripts/arm-deps.sh installs the cross compilers
# and each architecture's PortAudio. The handset package's tests are compiled and linked for
# each architecture too, so that the cross build of PortAudio is exercised in full.
build-cgo: deps
	scripts/arm-deps.sh
	@mkdir -p $(BIN)
	$(call cgo_env,amd64,x86_64-linux-gnu) $(GO) build -tags portaudio -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/linux-amd64-portaudio/ ./cmd/...
	$(call cgo_env,arm64,aarch64-linux-gnu) $(GO) build -tags portaudio -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/linux-arm64-portaudio/ ./cmd/...
	$(call cgo_env,arm,arm-linux-gnueabihf,7) $(GO) build -tags portaudio -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/linux-armv7-portaudio/ ./cmd/...
	$(call cgo_env,amd64,x86_64-linux-gnu) $(GO) test -c -tags portaudio -o /dev/null ./audio/portaudio/
	$(call cgo_env,arm64,aarch64-linux-gnu) $(GO) test -c -tags portaudio -o /dev/null ./audio/portaudio/
	$(call cgo_env,arm,arm-linux-gnueabihf,7) $(GO) test -c -tags portaudio -o /dev/null ./audio/portaudio/
	@ls -l $(BIN)/*-portaudio/

# The race detector's pointer checks reject how the PortAudio binding hands its stream id to
# C (an integer passed as a pointer, a known issue of github.com/gordonklaus/portaudio), so
# they are turned off for that one package; everything else is checked as usual.
PA_RACE := -gcflags=github.com/gordonklaus/portaudio=-d=checkptr=0

# Everything CI checks: formatting, vet, staticcheck, the cross builds, and every test with
# the race detector (fuzz targets run their seed corpora). The uplink's tests run a real S3
# server, versitygw, which scripts/versitygw.sh installs once (pinned, with go install).
test: deps fmt-check vet lint build
	vgw=$$(GO=$(GO) scripts/versitygw.sh) && WALLPHONE_VERSITYGW=$$vgw CGO_ENABLED=1 $(GO) test -race -count=1 -timeout $(TESTTIMEOUT) $(PKGS)
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout $(TESTTIMEOUT) $(PA_RACE) -tags portaudio ./audio/portaudio/

# The tests on the phones' processors, emulated by qemu-user (-short, no race detector, which
# needs a native build): every package in pure Go (CGO_ENABLED=0) for arm64 and for arm
# (GOARM=7), then the PortAudio handset with cgo for both. qemu-user starts only the test
# binary it is given (binfmt_misc is not there to start ARM binaries by itself), so the tests
# that start a second process of their own architecture cannot run: the commands' script,
# signal and crash tests (./cmd/...), which run the agent as a process, and spool's TestCrash
# and firmware/install's TestResumeAfterKill, which kill copies of their own test binary. They run natively in make test. No -L for qemu:
# the targets' libraries come from multiarch, and -L would pair another ld.so with them.
QEMU_ARM64 := timeout -s KILL 600 qemu-aarch64-static
QEMU_ARM   := timeout -s KILL 600 qemu-arm-static
ARMTEST    := -short -count=1 -timeout $(TESTTIMEOUT) -skip '^(TestCrash|TestResumeAfterKill)$$'
test-arm: deps
	scripts/arm-deps.sh
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) test $(ARMTEST) -exec '$(QEMU_ARM64)' $$($(GO) list $(PKGS) | grep -v /cmd/)
	CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=7 $(GO) test $(ARMTEST) -exec '$(QEMU_ARM)' $$($(GO) list $(PKGS) | grep -v /cmd/)
	$(call cgo_env,arm64,aarch64-linux-gnu) $(GO) test $(ARMTEST) -tags portaudio -exec '$(QEMU_ARM64)' ./audio/portaudio/
	$(call cgo_env,arm,arm-linux-gnueabihf,7) $(GO) test $(ARMTEST) -tags portaudio -exec '$(QEMU_ARM)' ./audio/portaudio/

# The A/B firmware switch on a real bootloader (firmware/boottest, README "The boot test"):
# Debian's U-Boot and arm64 kernel under qemu-system-aarch64, software emulation, with the arm64
# wallphoned as init, through a good update, a bad one rolled back, and POWER_CUTS power cuts
# (SEED replays a run: the test prints its seed). scripts/boot-deps.sh installs qemu and the
# tools, and unpacks the phone's busybox and kernel into $(BOOTDEPS).
BOOTDEPS   ?= .run/boot/deps
POWER_CUTS ?= 10
test-boot: go-deps
	scripts/boot-deps.sh $(BOOTDEPS)
	WALLPHONE_BOOT_DEPS=$$(cd $(BOOTDEPS) && pwd) WALLPHONE_BOOT_CUTS=$(POWER_CUTS) $(if $(SEED),WALLPHONE_BOOT_SEED=$(SEED)) \
	  $(GO) test -count=1 -timeout 60m -v ./firmware/boottest/

# The handset package builds only with -tags portaudio; it is checked with the tag as well.
vet:
	$(GO) vet $(PKGS)
	$(GO) vet -tags portaudio ./audio/portaudio/ ./cmd/wallphoned/

lint:
	$(GO) tool staticcheck $(PKGS)
	$(GO) tool staticcheck -tags portaudio ./audio/portaudio/ ./cmd/wallphoned/

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

# Benchmarks, each beside its baseline in the same run. The uplink's drains a backlog of
# UPLINK_BENCH_SEGMENTS segments (and one of 1,000) to a local S3 server.
UPLINK_BENCH_SEGMENTS ?= 2000
bench: deps
	vgw=$$(GO=$(GO) scripts/versitygw.sh) && WALLPHONE_VERSITYGW=$$vgw UPLINK_BENCH_SEGMENTS=$(UPLINK_BENCH_SEGMENTS) $(GO) test -run '^$$' -bench . -benchmem -count 1 $(PKGS)
	$(GO) test -run '^$$' -bench . -benchmem -count 1 -tags portaudio ./audio/portaudio/

# A short run of every fuzz target (FUZZTIME each).
FUZZTIME ?= 20s
fuzz: deps
	@for pkg in $$($(GO) list $(PKGS)); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

# The firmware crash test at length: KILLS kill -9s of the agent at random moments of firmware
# updates on the simulated phone (make test runs 100). SEED replays the schedule of a run
# that failed (the test prints its seed).
KILLS ?= 1000
SEED  ?=
soak-firmware: go-deps
	WALLPHONE_FIRMWARE_KILLS=$(KILLS) $(if $(SEED),WALLPHONE_FIRMWARE_SEED=$(SEED)) $(GO) test -count=1 -timeout 2h -v \
	  -run '^TestKill9DuringFirmwareUpdate$$' ./cmd/wallphoned/

# The whole system under faults (chaos/, README: The whole system under faults): the agent on
# the simulated phone with SIPp, versitygw and its repository, everything killed with kill -9
# on a seeded schedule, the promises checked at the end. make test runs it with 50 kills of
# the agent; chaos with CHAOS_KILLS, soak for DURATION (a Go duration: 30m, 8h). SEED replays
# the schedule of a run (each prints its seed).
CHAOS_KILLS ?= 300
DURATION    ?= 1h
CHAOS_RUN   = vgw=$$(GO=$(GO) scripts/versitygw.sh) && WALLPHONE_VERSITYGW=$$vgw $(if $(SEED),WALLPHONE_CHAOS_SEED=$(SEED))
chaos: deps
	$(CHAOS_RUN) WALLPHONE_CHAOS_KILLS=$(CHAOS_KILLS) $(GO) test -count=1 -timeout 0 -v -run '^TestChaos$$' ./chaos/

soak: deps
	$(CHAOS_RUN) WALLPHONE_CHAOS_DURATION=$(DURATION) $(GO) test -count=1 -timeout 0 -v -run '^TestChaos$$' ./chaos/

# Regenerate the spoken prompts from audio/prompts/catalog.tsv (needs espeak-ng and sox).
prompts:
	@command -v espeak-ng >/dev/null && command -v sox >/dev/null || \
	  { apt-get update -qq && apt-get install -y -qq espeak-ng sox; }
	scripts/gen-prompts.sh

# Go modules (and the pinned tools in go.mod) are fetched by the go command itself. From
# Debian: gcc for the race detector, the stock age tool, which the tests use to show that
# any single segment decrypts without wallphone's code, and PortAudio's headers with
# pkg-config for the handset's tests (checked by pkg-config, as the headers have no command).
# The SIP trunk's tests call real SIP peers: SIPp (sip-tester) and baresip; tcpdump captures
# the RTP the agent sends to SIPp (run as root, as CI does). The bootloader environment is
# checked against the reference tools on the same files: fw_printenv and fw_setenv
# (libubootenv-tool), mkenvimage (u-boot-tools); mkimage (u-boot-tools) packs dist/boot.cmd.
# The firmware slot and block index tests use real block devices and file systems: mke2fs
# (e2fsprogs) and losetup (mount).
APT_NEEDS := gcc:gcc age:age pkg-config:pkg-config sipp:sip-tester baresip:baresip tcpdump:tcpdump \
             fw_printenv:libubootenv-tool mkenvimage:u-boot-tools mkimage:u-boot-tools \
             /sbin/mke2fs:e2fsprogs /sbin/losetup:mount
go-deps:
	@command -v $(GO) >/dev/null || { echo "Go is required (go.mod names the version)"; exit 1; }
	@$(GO) mod download

deps: go-deps
	@missing=""; for pair in $(APT_NEEDS); do \
	  command -v $${pair%%:*} >/dev/null || missing="$$missing $${pair##*:}"; done; \
	pkg-config --exists portaudio-2.0 2>/dev/null || missing="$$missing portaudio19-dev"; \
	if [ -n "$$missing" ]; then \
	  if command -v apt-get >/dev/null; then \
	    echo "installing:$$missing"; apt-get update -qq && apt-get install -y -qq $$missing; \
	  else echo "needed:$$missing"; exit 1; fi; fi

clean:
	rm -rf $(BIN) .run
