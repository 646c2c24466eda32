# Cocoon appliance. Targets: setup build demo test e2e bench fuzz lint.
# Everything a target needs it installs itself (Debian packages via apt-get,
# Go modules via the module proxy, the pinned Debian inputs via
# `cocoon image fetch`).

SHELL      := /bin/bash
GO         ?= go
BIN        := bin/cocoon
OUT        ?= out/image
FUZZTIME   ?= 30s
SUDO       := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_TOOLS  := cryptsetup-bin squashfs-tools cpio fdisk gdisk xz-utils osslsigncode sbsigntool pesign openssl qemu-system-x86 swtpm swtpm-tools tpm2-tools libtss2-tcti-swtpm0 postgresql chromium
export COCOON_CACHE ?= $(HOME)/.cache/cocoon

.PHONY: setup build demo test e2e bench fuzz lint tools

# Debian tools the tests cross-check our formats with.
tools:
	@missing=""; for t in veritysetup unsquashfs cpio sfdisk sgdisk xz osslsigncode sbverify pesign openssl qemu-system-x86_64 swtpm tpm2_checkquote chromium; do command -v $$t >/dev/null || missing=1; done; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing=1; \
	if [ -n "$$missing" ]; then \
	  echo "installing $(APT_TOOLS)"; \
	  $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q $(APT_TOOLS); \
	fi

setup: tools build
	$(GO) mod download
	$(BIN) image fetch

build:
	$(GO) build -trimpath -o $(BIN) ./cmd/cocoon

# The whole network on this machine: build the image, start a registry
# (SQLite + emulated TON ledger), boot the appliance under QEMU through the
# host launcher, verify it as a client, chat through the client's proxy,
# credit the receipt, pay out, print a summary. `bin/cocoon dev up --no-vm`
# is the 10-second version (local worker, simulated TEE).
demo: setup
	@start=$$(date +%s); $(BIN) dev up --image $(OUT); rc=$$?; \
	echo "make demo: wall time $$(( $$(date +%s) - start )) s (exit $$rc)"; exit $$rc

test: setup
	$(GO) vet ./...
	COCOON_REQUIRE_INPUTS=1 COCOON_APT_TEST=1 $(GO) test -count=1 -timeout 30m ./...

# Rebuild the image and compare it with its manifest, bit for bit; boot it
# under QEMU: direct boot with network, then the negative boots (flipped
# rootfs byte, wrong root hash, no config disk); OVMF + swtpm through
# `cocoon host launch` (PCRs against the prediction, a tampered initrd); the
# whole network through `cocoon dev up`, step by step, with its hostile
# cases; the dashboard in headless Chromium; the client proxy driven by the
# `openai` npm package. Prints the wall time of the whole run.
e2e: setup
	@start=$$(date +%s); \
	$(BIN) image build --out $(OUT) && \
	$(BIN) image verify --manifest $(OUT)/manifest.json && \
	COCOON_REQUIRE_INPUTS=1 COCOON_E2E_VM=1 $(GO) test -count=1 -v -timeout 30m -run 'TestBootQEMU|TestE2E' ./init ./cmd/cocoon/cli && \
	COCOON_REQUIRE_CHROMIUM=1 $(GO) test -count=1 -v -run TestScreenshot ./registry/dashboard && \
	COCOON_OPENAI_NPM=1 $(GO) test -count=1 -v -run TestOpenAINPM ./client; \
	rc=$$?; echo "make e2e: wall time $$(( $$(date +%s) - start )) s (exit $$rc)"; exit $$rc

bench: setup
	scripts/bench.sh

fuzz:
	scripts/fuzz.sh $(FUZZTIME)

STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.6.1

lint:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) -checks U1000,SA4006,SA4009,SA9003 ./...
