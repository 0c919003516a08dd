# Every step CI and a newcomer need; CI runs `make test` on a clean clone.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup test test-fast demo docs bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# The CPU build of TensorFlow (tensorflow-cpu): no CUDA libraries, no CUDA start-up lines; JAX's
# CPU wheel, which the tests of the JAX backend (tests/test_jax.py) train on.
# tf-keras (tf.keras 2, under which the tests run the reference's own model) of the installed
# TensorFlow's minor version (read from the package's metadata: importing TensorFlow takes 6 s),
# without its dependencies: it names `tensorflow`, which pip would install over tensorflow-cpu.
# pip compiles none of the packages' modules (28 s for all of them): Python compiles each one on
# its first import. Those of the packages that every test process imports are imported here,
# once (15 s), not by each parallel test worker at once; their start-up lines are shown only if
# an import fails.
$(STAMP): $(PY) setup.py
	$(PY) -m pip install --quiet --no-compile -e ".[cpu,jax,test]"
	$(PY) -m pip install --quiet --no-compile --no-deps "tf-keras~=$$($(PY) -c 'from importlib import metadata; print(metadata.version("tensorflow-cpu").rsplit(".", 1)[0])').0"
	$(PY) -c "import tensorflow, keras, jax, sklearn, pandas, matplotlib.pyplot, apache_beam, pytest, xdist" \
		2> $(VENV)/imports.log || { cat $(VENV)/imports.log; exit 1; }
	touch $(STAMP)

setup: $(STAMP)

# Tests are spread over TEST_WORKERS processes (pytest-xdist), the slow ones first, longest
# first (tests/conftest.py), handed out one at a time to whichever worker is free
# (--maxschedchunk=1: dealt in chunks, or with worksteal, a long test waited behind others on a
# busy worker while the other sat idle); the ten slowest are listed at the end. Three workers on
# two cores: a worker waiting on a subprocess, an XLA compile (one thread) or its files leaves a
# core idle that the third fills (measured on 2 cores: 177% busy with two workers, 200% with three).
TEST_WORKERS ?= 3
test: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --maxschedchunk=1 --durations=10 tests

test-fast: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --maxschedchunk=1 -m "not slow" tests

# The whole pipeline on a synthetic world (about 100 videos, 3 folds, two presets and their
# ensemble); a re-run skips the stages already done. DEMO_ARGS passes e.g. --n_videos=40.
DEMO_DIR ?= runs/demo
DEMO_ARGS ?=
demo: $(STAMP)
	$(PY) -m chimpact.demo --run_dir=$(DEMO_DIR) $(DEMO_ARGS)

# docs/FLAGS.md from the entry scripts' absl flags (tests/test_flagsdoc.py fails when stale).
docs: $(STAMP)
	$(PY) -m chimpact.commands.flagsdoc

# Each benchmark runs our code and its baseline on the same data; the ratio is the last line.
bench: $(STAMP)
	for script in benchmarks/bench_*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

clean:
	rm -rf runs build *.egg-info .pytest_cache
