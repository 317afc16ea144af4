"""Helpers of the Python module's tests (tests/python/test_*.py): dtypes, the value pattern, and the
C++ peer program they talk to."""
import gc
import os
import subprocess
import traceback

import numpy as np
import pytest

from ndshm_patterns import pattern as flat_pattern

DTYPES = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float32",
          "float64", "complex64", "complex128"]
ORDERS = ["C", "F"]


def shm_exists(name, directory=None):
    """True if the segment `name` exists (in /dev/shm, or in the directory backend)."""
    return os.path.exists(os.path.join(directory or "/dev/shm", name))


def collect():
    """Collects garbage now, so that arrays nobody references release their segments."""
    gc.collect()


def pattern(dtype, shape, shift=0):
    """The test pattern: at C-order flat index k, the value tests/test_util.hpp's pattern_value(k + shift)
    gives (ndshm_patterns.py has the formula)."""
    dtype = np.dtype(dtype)
    n = int(np.prod(shape, dtype=np.int64))
    return flat_pattern(dtype, (n + shift,)).reshape(-1)[shift:].reshape(shape)


class Peer:
    """The C++ peer program (tests/python_peer.cpp), spoken to line by line over its stdin and stdout."""

    def __init__(self, *args):
        path = os.environ.get("NDSHM_TEST_PEER")
        if not path:
            pytest.skip("NDSHM_TEST_PEER is not set (ctest sets it to the ndshm_python_peer program)")
        self.args = [path, *map(str, args)]
        self.proc = subprocess.Popen(self.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def line(self):
        """The peer's next line of output (without the newline); fails the test at end of output."""
        text = self.proc.stdout.readline()
        assert text, f"{self.args}: no more output (exit status {self.proc.wait()})"
        return text.rstrip("\n")

    def send(self, text):
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def finish(self, expect=0):
        """Closes the peer's input, reads the rest of its output and checks its exit status."""
        out, _ = self.proc.communicate(timeout=120)
        assert self.proc.returncode == expect, f"{self.args} exited with {self.proc.returncode}:\n{out}"
        return out.splitlines()

    def kill(self, sig):
        self.proc.send_signal(sig)
        self.proc.communicate(timeout=120)


def run_peer(*args):
    """Runs the peer to completion; returns its output lines (fails the test unless it exits 0)."""
    return Peer(*args).finish()


def in_child(body):
    """Runs body() in a forked child; returns its exit code (body's return value; 99 if it raised)."""
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            code = body()
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)
