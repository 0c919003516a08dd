"""Shared pytest setup: quiet TensorFlow logs and keep tests on the CPU."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
# One thread per TensorFlow op: make test runs three workers on two cores, and TensorFlow's
# default pools (a thread per core in every process) spun against each other. Measured, the
# same suite from the same tree: 14.7 min (27.4 CPU-min) with the default pools, 10.5 min
# (19.4 CPU-min) with these; the processes the tests start inherit them.
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "2")
# XLA:CPU compiles the same graphs (what a TPU compiles) without LLVM's optimisations and with
# its older fusion emitters, under TensorFlow and JAX alike: EfficientNet-B0's train step in
# 57 s against 87 s with neither, and in 33 CPU s against 51 with the first alone; the tiny
# model's training under JAX in 10 CPU s against 13. Tests and the processes they start
# inherit them.
for _flag in ("--xla_backend_optimization_level=0", "--xla_cpu_use_fusion_emitters=false"):
    if _flag.split("=")[0] not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_flag}".strip()

import pathlib

import pytest

SHARED = pathlib.Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture
def shared_dir():
    """../shared beside the checkout; tests that need it skip when it is absent, except in CI
    (CI=true), which always has it: there its absence fails them."""
    if not SHARED.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{SHARED} is absent, and CI=true always has it")
        pytest.skip("../shared is absent")
    return SHARED


# Modules of the longest tests (minutes each on 2 cores), longest first: run first, so that the
# two workers end together instead of one waiting on the other's last long test.
LONGEST_FIRST = ("test_demo", "test_accelerator", "test_survey", "test_worlds",
                 "test_reference_import", "test_jax", "test_families", "test_preemption",
                 "test_install")


def pytest_collection_modifyitems(items):
    """Slow tests first, the longest modules' first among them, so that parallel workers
    (make test) do not end waiting on one."""
    def order(item):
        module = item.module.__name__.rsplit(".", 1)[-1]
        rank = LONGEST_FIRST.index(module) if module in LONGEST_FIRST else len(LONGEST_FIRST)
        return item.get_closest_marker("slow") is None, rank

    items.sort(key=order)
