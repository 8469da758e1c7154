# The two commands a new user needs: `make demo` and `make test`.
# Both build a virtual environment in .venv on first use (torch==2.13.0 is the CPU build).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: demo test venv bench bundles results clean system-deps release lock

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[build,dev]'
	# timm, for the HeartBEiT parity test only: without its dependencies, because PyPI's
	# torchvision does not load beside the CPU torch build (tests stand it in, see tests/helpers)
	$(PY) -m pip install -q --no-deps timm==1.0.31
	touch $(STAMP)

venv: $(STAMP)

# Debian packages the test suite drives for real (headless Chromium + chromium-driver for the screening
# report and the bedside display, alsa-utils' aplay for the alarm sound).
system-deps:
	@bash scripts/system-deps.sh

test: $(STAMP) system-deps
	$(PY) -m pytest -q $(PYTEST_ARGS)

# make demo SOURCE=intellivue-vt: a Philips IntelliVue capture instead of the cart (nsr, nsr-spo2-85, nsr-no-pleth, vt, vf)
demo: $(STAMP)
	$(PY) -m edge_ecg.demo $(if $(SOURCE),--source $(SOURCE))

bench: $(STAMP)
	$(PY) bench/run_all.py

# Regenerates every results table in docs/ from docs/results/*.json (no figure is typed by hand).
results: $(STAMP)
	$(PY) scripts/make_results.py

# Rebuilds the committed 0.3 bundles from ../shared/ecg with fixed seeds (docs/factory.md says what
# ran where and for how long: hours on 2 shared CPU cores). The corpus and the MIM backbone feed the
# low-label study; the CPU bundles' trunk is randomly initialised (configs/*.toml [init]).
bundles: $(STAMP)
	$(PY) -m edge_ecg train corpus configs/pretrain.toml
	$(PY) -m edge_ecg train pretrain configs/pretrain.toml
	for c in af rhythm 12lead-screen; do $(PY) -m edge_ecg train bundle configs/$$c.toml || exit 1; done
	$(PY) -m edge_ecg train lowlabel configs/af.toml

# Offline Debian packages in dist/: edge-ecg_<version>_arm64.deb (Jetson, JetPack 6) and _amd64.deb
# (x86-64 benches), each with a hash-pinned wheelhouse, checked with lintian (docs/jetson.md).
# SIGNING_KEY=factory.key signs the bundles; without it a development key is made in .cache/release/.
release: $(STAMP) system-deps
	$(PY) -m release.build --out dist $(if $(SIGNING_KEY),--signing-key $(SIGNING_KEY),)

# Re-resolve release/locks/ from pyproject's dependencies (network; Python 3.10-3.12 on PATH or in pyenv).
lock: $(STAMP)
	$(PY) -m release.lock

clean:
	rm -rf $(VENV) .pytest_cache out demo-out dist
