# One entry point for a fresh machine: `make demo` and `make test` each set everything up first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = "0" ] || echo sudo)
# Three test processes on two cores: the longest tests mostly wait (on servers starting, heartbeats going
# silent, a dead run's 60 s lease), and a third process fills what those waits leave idle. Measured on
# this machine: 12 min 32 s with -n 2, 9 min 31 s with -n 3. `loadfile` keeps a file's tests (and its
# module-scoped servers) on one process.
PYTEST_ARGS ?= -n 3 --dist loadfile

.PHONY: setup system-packages browser demo test lint bench clean

setup: system-packages $(STAMP)

# Debian packages the product needs: ffmpeg and ffprobe (imageio-ffmpeg has no ffprobe).
system-packages:
	@command -v ffprobe >/dev/null && command -v ffmpeg >/dev/null || \
	  ( $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ffmpeg )

# Debian's Chromium for the browser tests of the web console (Playwright never downloads a browser here),
# and Debian's nginx for the test of the console behind a real TLS reverse proxy (never started as a service).
browser:
	@command -v chromium >/dev/null || \
	  ( $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium )
	@test -x /usr/sbin/nginx || command -v nginx >/dev/null || \
	  ( $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx-light )

# torch==2.13.0 is pinned in pyproject.toml: pip takes the CPU wheel on disk, never a CUDA build.
# invisible-watermark goes in without its deps: its metadata pulls opencv-python, which clashes with
# the opencv-contrib-python-headless that deepface brings (see docs/dependencies.md).
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip install -q --no-deps invisible-watermark==0.2.0
	@touch $(STAMP)

demo: setup
	$(BIN)/likeness demo run

# The static checks, fastest first: lint, layout, types (the files are in pyproject's [tool.mypy]; the first
# run builds .mypy_cache, about 80 s of CPU, later runs take seconds), the import-linter layer contracts.
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint browser
	$(BIN)/pytest $(PYTEST_ARGS)

bench: setup
	$(BIN)/python -m bench.audit
	$(BIN)/python -m bench.animate
	$(BIN)/python -m bench.checks
	$(BIN)/python -m bench.publish
	$(BIN)/python -m bench.batch

clean:
	rm -rf var build *.egg-info
