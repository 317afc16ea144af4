"""Fixtures of the Python module's tests, run by ctest (tests/CMakeLists.txt) as

    PYTHONPATH=<build>/python NDSHM_TEST_PEER=<ndshm_python_peer> NDSHM_TEST_TOOL=<ndshm> \\
        /usr/bin/python3 -m pytest tests/python/test_<area>.py

Processes synchronise on lines through pipes, never on sleeps. Every test checks that the segments it
made are gone when it expects them to be; ctest's fixture checks that the whole suite left nothing
in /dev/shm.
"""
import os

import pytest

import ndshm
from ndshm_testing import collect


@pytest.fixture(autouse=True)
def no_leftovers():
    """Whatever a failing test left, its segments go with it (a passing test has checked its own)."""
    yield
    collect()
    ndshm.free_session()


@pytest.fixture
def shm_dir(tmp_path):
    """A private directory backend: inspection and gc tests see only their own segments there."""
    return str(tmp_path)


@pytest.fixture
def tool():
    path = os.environ.get("NDSHM_TEST_TOOL")
    if not path:
        pytest.skip("NDSHM_TEST_TOOL is not set (ctest sets it to the ndshm program)")
    return path
