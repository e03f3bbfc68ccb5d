# urunc: `make demo` sets everything up and runs a sample unikernel through containerd;
# `make test` sets everything up and runs every test.

PYTHON      ?= /usr/bin/python3
PREFIX      ?= /usr/local
LIBDIR      := $(PREFIX)/lib/urunc
BUILD       := $(CURDIR)/build
VENV        := $(CURDIR)/.venv
IMAGES      := $(BUILD)/images
DEMO_IMAGE  := docker.io/library/urunc-hello:latest
PYTEST_ARGS ?=
FUZZ_SECONDS ?= 600

# `make demo` needs only these: the runtime, the sample guest, QEMU and containerd.
DEMO_PACKAGES := qemu-system-x86 containerd python3 python3-dev gcc make binutils libc6-dev ca-certificates
# `make test` (and install, images, bench) needs everything: CNI, Docker, the Linux guest's tools.
APT_PACKAGES := $(DEMO_PACKAGES) runc containernetworking-plugins skopeo busybox-static iproute2 \
                python3-venv cpio e2fsprogs docker.io libseccomp2

define apt_install
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi
endef

.PHONY: all deps deps-demo hello venv guests images install tenders demo test unit bench lint fuzz clean

all: install images

deps:
	$(call apt_install,$(APT_PACKAGES))

deps-demo:
	$(call apt_install,$(DEMO_PACKAGES))

$(VENV)/.stamp: requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

venv: deps $(VENV)/.stamp

hello: deps-demo
	$(MAKE) -C guests/hello BUILD=$(BUILD)/hello

guests: deps hello
	$(MAKE) -C guests/pause BUILD=$(BUILD)/pause
	guests/linux/fetch-kernel.sh $(BUILD)/linux
	$(MAKE) -C guests/linux OUT=$(BUILD)/linux

install: guests
	PYTHON=$(PYTHON) PREFIX=$(PREFIX) BUILD=$(BUILD) packaging/install.sh

images: install
	mkdir -p $(IMAGES)
	$(PREFIX)/bin/urunc-build -f guests/hello/Containerfile -t urunc-hello:latest -o $(IMAGES)/hello.tar $(BUILD)/hello
	$(PREFIX)/bin/urunc-build -f guests/pause/Containerfile -t urunc-pause:1 -o $(IMAGES)/pause.tar $(BUILD)/pause
	$(PREFIX)/bin/urunc-build --format docker -f guests/hello/Containerfile -t urunc-hello:latest -o $(IMAGES)/hello-docker.tar $(BUILD)/hello

# Solo5's tenders from ../shared/unikernels/solo5 (Solo5 v0.9.0, built unchanged), when that folder
# is there, into $(PREFIX)/bin: on PATH, where urunc looks for them (README: "Solo5 tenders").
SOLO5_SHARED := $(abspath $(CURDIR)/../shared/unikernels/solo5)
tenders: deps
	@if [ -d $(SOLO5_SHARED) ]; then \
	  for t in solo5-hvt solo5-spt solo5-elftool; do install -m 0755 $(SOLO5_SHARED)/$$t $(PREFIX)/bin/$$t; done; \
	  echo "installed solo5-hvt, solo5-spt, solo5-elftool from $(SOLO5_SHARED) in $(PREFIX)/bin"; \
	else echo "no $(SOLO5_SHARED): Solo5 tenders not installed (tests/real will skip)"; fi

# The demo runs only the sample guest: no Linux guest kernel, no Docker, no CNI.
demo: hello
	PYTHON=$(PYTHON) PREFIX=$(PREFIX) BUILD=$(BUILD) packaging/install.sh
	mkdir -p $(IMAGES)
	$(PREFIX)/bin/urunc-build -f guests/hello/Containerfile -t urunc-hello:latest -o $(IMAGES)/hello.tar $(BUILD)/hello
	packaging/demo.sh $(IMAGES)/hello.tar $(DEMO_IMAGE)

test: venv images tenders
	$(VENV)/bin/python -m pytest -p no:cacheprovider $(PYTEST_ARGS) tests

# Each fuzz target (tests/fuzz/) for FUZZ_SECONDS, one after another; `make test` runs a short smoke pass.
fuzz: venv
	$(VENV)/bin/python tests/fuzz/run.py --seconds $(FUZZ_SECONDS) --report $(BUILD)/fuzz/results.md

unit: venv
	PYTHONPATH=src $(VENV)/bin/python -m pytest -p no:cacheprovider tests/unit

bench: venv images
	$(VENV)/bin/python bench/run.py

lint: venv
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy src

clean:
	rm -rf $(BUILD)
