"""Shared pytest setup: quiet TensorFlow logs and keep tests on the CPU."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

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


def pytest_collection_modifyitems(items):
    """Slow tests first, so that parallel workers (make test) do not end waiting on one."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
