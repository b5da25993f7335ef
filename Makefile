# Two commands on a fresh machine with Python 3.11: `make demo` and `make test`.
# Both create .venv and install the project into it when it is missing.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
KIMG    ?=          # empty: the demo's default budget (linkgan.demo.DEFAULT_KIMG, 9)
MINUTES ?=
BASELINE ?=
OUT     ?= demo_out
ARGS    ?=

.PHONY: install test lint browser demo bench docs clean

install: $(STAMP)

$(STAMP): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	$(PY) -c "import torch, pytorch3d, mcubes, trimesh, plyfile, cv2, imageio_ffmpeg, safetensors"
	touch $(STAMP)

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
