"""NumPy's side of ndshm's file tests (tests/file_test.cpp, tests/store_test.cpp). Any python3 with NumPy.

    objects_npy.py save PATH DESCR SHAPE ORDER
        Writes PATH with np.save: the "pattern" values below, in C (ORDER C) or Fortran (F) order.
    objects_npy.py check PATH DESCR SHAPE ORDER
        Reads PATH with np.load (and again with mmap_mode='r') and checks its dtype, shape, order and
        the pattern values.
    objects_npy.py object PATH
        Checks that an ndshm object file is a valid .npy: np.load gives a 1-d uint8 array whose data
        starts at byte 4096 of the file with the object header's magic NDSHMOBJ, and whose length is
        the payload size the object header records.

DESCR is a .npy descr ('<f8', '|u1', ...), SHAPE comma-separated extents ('' for a 0-d array).
Pattern value of the element at C-order flat index k:

    bool       k % 3 == 0
    signed     (7k + 3) % 100 - 50
    unsigned   (7k + 3) % 100
    float      k / 2 - 3
    complex    (k / 2 - 3) + (k / 4 + 1)j

Exits 0 when everything matches, 1 with a message on stderr otherwise.
"""

import sys

import numpy as np
from ndshm_patterns import pattern as shared_pattern


class Mismatch(Exception):
    pass


def pattern(dtype, shape):
    return shared_pattern(dtype, shape, Mismatch)


def check_array(a, dtype, shape, fortran, what):
    if a.dtype != dtype:
        raise Mismatch(f"{what}: dtype is {a.dtype}, expected {dtype}")
    if a.shape != shape:
        raise Mismatch(f"{what}: shape is {a.shape}, expected {shape}")
    if a.ndim >= 2 and min(a.shape) > 1 and np.isfortran(a) != fortran:
        raise Mismatch(f"{what}: np.isfortran is {np.isfortran(a)}, expected {fortran}")
    if not np.array_equal(a, pattern(dtype, shape)):
        raise Mismatch(f"{what}: the values differ from the pattern")


def main(argv):
    action, path = argv[1], argv[2]
    if action == 'object':
        a = np.load(path)
        m = np.load(path, mmap_mode='r')
        if a.dtype != np.uint8 or a.ndim != 1:
            raise Mismatch(f"np.load gave {a.dtype} of shape {a.shape}, expected 1-d uint8")
        if m.offset != 4096:
            raise Mismatch(f"the data starts at byte {m.offset}, expected 4096")
        if bytes(a[:8]) != b'NDSHMOBJ':
            raise Mismatch(f"the payload starts with {bytes(a[:8])!r}, expected b'NDSHMOBJ'")
        recorded = int.from_bytes(bytes(a[72:80]), 'little')
        if recorded != a.size:
            raise Mismatch(f"the object header records {recorded} payload bytes, NumPy sees {a.size}")
        return
    dtype = np.dtype(argv[3])
    shape = tuple(int(x) for x in argv[4].split(',') if x)
    fortran = argv[5] == 'F'
    if action == 'save':
        v = pattern(dtype, shape)
        # np.asfortranarray makes 0-d arrays 1-d: Fortran order only where it means something.
        np.save(path, np.asfortranarray(v) if fortran and v.ndim >= 2 else v, allow_pickle=False)
    elif action == 'check':
        check_array(np.load(path, allow_pickle=False), dtype, shape, fortran, "np.load")
        check_array(np.load(path, mmap_mode='r'), dtype, shape, fortran, "np.load(mmap_mode='r')")
    else:
        raise Mismatch(f"unknown action {action}")


if __name__ == '__main__':
    try:
        main(sys.argv)
    except Mismatch as e:
        print(f"objects_npy.py {' '.join(sys.argv[1:])}: {e}", file=sys.stderr)
        sys.exit(1)
