# ember — build, test and demo targets. `make test` and `make demo` work from a fresh clone:
# they install what they need (Debian packages with apt-get, Python packages into .venv).

PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
APT_PACKAGES := qemu-system-x86 busybox-static linux-source-6.1 bc flex bison libelf-dev \
	libssl-dev cpio e2fsprogs curl socat acpica-tools
STAMP := build/.stamps

.PHONY: all deps venv bytecode guest test test-unit test-e2e lint demo bench clean

all: venv

$(STAMP)/apt: Makefile
	@mkdir -p $(STAMP)
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:" $$missing; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
	@touch $@

deps: $(STAMP)/apt

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -e '.[dev]'
	@touch $@

venv: $(VENV)/.installed

# Compiled modules, written even where PYTHONDONTWRITEBYTECODE is set: without them every
# ember process compiles its sources again (about 10 ms of start-up to the API socket).
# Only changed sources are recompiled.
bytecode: venv
	@$(VPY) -m compileall -q src/ember >/dev/null

guest: deps venv
	$(VPY) guest/build.py

test-unit: venv
	$(VPY) -m pytest -q tests/unit

test-e2e: deps venv bytecode guest
	$(VPY) -m pytest -q -m e2e tests/e2e

lint: venv
	$(VPY) -m ruff check src tests guest
	$(VPY) -m mypy

test: deps venv bytecode guest lint
	$(VPY) -m pytest -q tests

demo: deps venv bytecode guest
	@echo "make demo: booting ember's microVM; on hosts whose KVM cannot boot Linux this runs"
	@echo "inside the nested rig (an L1 VM under QEMU emulation), so expect tens of seconds."
	$(VENV)/bin/ember-rig run -- scripts/demo.sh

bench: deps venv bytecode guest
	@test -x $(VENV)/bin/py-spy || $(VPY) -m pip install -q py-spy
	$(VPY) -m bench $(if $(BENCH_QUICK),--quick)

clean:
	rm -rf build $(VENV)
