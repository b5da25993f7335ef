# Two commands on a fresh machine with Python 3.11: `make demo` and `make test`.
# Both create .venv and install the project into it when it is missing or out of date (a new
# requirements/lock.txt or setup.py). VENV=DIR installs into another venv.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# The exact, hash-locked set `make install` installs (setup.py keeps ranges for other
# environments). `make lock` regenerates it with uv (why uv: requirements/lock.in).
LOCK   := requirements/lock.txt
UV_VERSION := 0.13.9
UPGRADE ?=
KIMG    ?=          # empty: the demo's default budget (linkgan.cli_options.DEMO_KIMG, 13.5)
MINUTES ?=
BASELINE ?=
OUT     ?= demo_out
ARGS    ?=

.PHONY: install lock wheel-check test lint browser demo bench docs clean

install: $(STAMP)

# Every package with its sha256 (a mismatch stops the install), pip and setuptools included;
# then the project itself, editable, with no dependencies and no build isolation (built with
# the lock's setuptools: nothing is fetched without a hash).
$(STAMP): $(LOCK) setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes -r $(LOCK)
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -c "import torch, pytorch3d, mcubes, trimesh, plyfile, cv2, imageio_ffmpeg, safetensors"
	touch $(STAMP)

# Regenerate the lock from setup.py (install_requires + the `test` extra) and
# requirements/lock.in, against PyPI only, for CPython 3.11 on x86-64 Linux. Keeps the
# current pins where the ranges allow; UPGRADE=1 moves every pin to the newest release.
# The lock is replaced only when it changes (a new lock reinstalls .venv on the next make).
lock:
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet uv==$(UV_VERSION)
	if [ -f $(LOCK) ]; then cp $(LOCK) $(LOCK).new; else rm -f $(LOCK).new; fi  # pins kept
	$(VENV)/bin/uv pip compile setup.py requirements/lock.in --extra test --generate-hashes \
	  --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
	  --default-index https://pypi.org/simple --custom-compile-command 'make lock' \
	  $(if $(UPGRADE),--upgrade) --quiet -o $(LOCK).new
	if cmp -s $(LOCK).new $(LOCK); then rm $(LOCK).new; echo "$(LOCK): unchanged"; \
	else mv $(LOCK).new $(LOCK); echo "$(LOCK): updated"; fi

# Build the wheel, install it with the lock into a fresh venv outside the checkout and run
# `linkgan --version`, a short demo and base:NAME from there (tests/test_wheel.py, about 11
# minutes on 2 busy cores: 2 to install the lock, most of the rest the demo's attribute
# classifier). CI runs it after `make test`.
wheel-check: $(STAMP)
	$(VENV)/bin/pytest -q -m slow tests/test_wheel.py $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The report and viewer tests drive Debian's headless Chromium (with its chromedriver for
# Selenium): install them when missing.
browser:
	@{ command -v chromium && command -v chromedriver; } >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver >/dev/null; }

test: lint browser
	$(VENV)/bin/pytest -q $(ARGS)

demo: $(STAMP)
	$(VENV)/bin/linkgan demo $(if $(KIMG),--kimg $(KIMG)) $(if $(MINUTES),--minutes $(MINUTES)) \
	  $(if $(BASELINE),--baseline) --out $(OUT)

bench: $(STAMP)
	$(PY) bench/train_step.py --config configs/quickstart_2d.yaml --out bench/results/train_step.json

# docs/configs.md from the config dataclasses' field docs (tests/test_config.py checks it).
docs: $(STAMP)
	$(PY) -m link_core.train.config_docs > docs/configs.md

clean:
	rm -rf $(VENV) demo_out .pytest_cache
