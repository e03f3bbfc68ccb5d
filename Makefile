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

APT_PACKAGES := qemu-system-x86 containerd runc containernetworking-plugins skopeo \
                busybox-static iproute2 python3 python3-venv python3-dev gcc make binutils libc6-dev \
                cpio e2fsprogs ca-certificates docker.io

.PHONY: all deps venv guests images install demo test unit bench lint clean

all: install images

deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

$(VENV)/.stamp: requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

venv: deps $(VENV)/.stamp

guests: deps
	$(MAKE) -C guests/hello BUILD=$(BUILD)/hello
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

demo: images
	packaging/demo.sh $(IMAGES)/hello.tar $(DEMO_IMAGE)

test: venv images
	$(VENV)/bin/python -m pytest -p no:cacheprovider $(PYTEST_ARGS) tests

unit: venv
	PYTHONPATH=src $(VENV)/bin/python -m pytest -p no:cacheprovider tests/unit

bench: venv images
	$(VENV)/bin/python bench/run.py

lint: venv
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy src

clean:
	rm -rf $(BUILD)
