"""NumPy's half of examples/numpy_interop.cpp: map an ndshm segment in place and double it.

    python3 numpy_interop.py NAME

An ndshm segment is a valid .npy file, so np.load maps it: no copy, no ndshm code on this side.
"""
import sys

import numpy as np

name = sys.argv[1]
# [readme]
a = np.load('/dev/shm/' + name, mmap_mode='r+')  # the very bytes C++ sees
# [readme-end]
print(f"python: mapped {name}: {a.dtype}, shape {a.shape}, sum {a.sum():g}")
a *= 2  # in place: C++ sees the result without reading anything back
a.flush()
print(f"python: doubled it in place, sum {a.sum():g}")
