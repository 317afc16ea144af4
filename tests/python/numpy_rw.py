"""NumPy's side of ndshm's interop tests (tests/numpy_test.cpp). Run it with a python3 that has NumPy.

    numpy_rw.py create PATH DESCR SHAPE ORDER
        Makes PATH with np.lib.format.open_memmap (mode w+) and fills it with the "initial" values.
    numpy_rw.py update PATH DESCR SHAPE ORDER [--data-offset N]
        Maps PATH with np.load(PATH, mmap_mode='r+'), checks its header, dtype, shape, order, memory
        layout and the "initial" values, then writes the "written" values in place and flushes.
    numpy_rw.py check PATH DESCR SHAPE ORDER --values {initial,written} [--data-offset N]
        The same checks, read-only (mmap_mode='r'), against the given values.

DESCR is a .npy descr ('<f8', '|u1', ...), SHAPE comma-separated extents ('' for a 0-d array), ORDER
C or F. --data-offset is where the data must start (4096 for segments ndshm made).

Every value depends only on the C-order flat index k of its element and on the dtype's kind; the C++
side computes the same numbers:

    kind       initial                       written
    bool       k % 3 == 0                    not initial
    signed     (7k + 3) % 100 - 50           2 * initial + 1
    unsigned   (7k + 3) % 100                2 * initial + 1
    float      k / 2 - 3                     2 * initial + 1
    complex    (k / 2 - 3) + (k / 4 + 1)j    2 * initial + 1

Exits 0 when everything matches, 1 with a message on stderr otherwise.
"""

import argparse
import sys

import numpy as np
from ndshm_patterns import pattern


class Mismatch(Exception):
    pass


def expect(cond, what):
    if not cond:
        raise Mismatch(what)


def values(dtype, shape, which):
    """The array of `which` values ('initial' or 'written') for dtype and shape, in C order."""
    v = pattern(dtype, shape, Mismatch)
    kind = dtype.kind
    if which == 'written':
        v = ~v if kind == 'b' else (v * 2 + 1).astype(dtype)
    return v


def first_difference(a, want):
    if a.ndim == 0:
        return f"{a[()]!r} instead of {want[()]!r}"
    idx = tuple(np.argwhere(a != want)[0])
    return f"element {idx} is {a[idx]!r} instead of {want[idx]!r}"


def read_header(path):
    """(version, shape, fortran_order, dtype, data offset) as NumPy's own header reader sees them."""
    with open(path, 'rb') as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        return version, shape, fortran, dtype, f.tell()


def check(path, dtype, shape, fortran, which, data_offset, mode):
    version, h_shape, h_fortran, h_dtype, offset = read_header(path)
    expect(h_dtype == dtype, f"header descr is {h_dtype.str!r}, expected {dtype.str!r}")
    expect(h_shape == shape, f"header shape is {h_shape}, expected {shape}")
    expect(h_fortran == fortran, f"header fortran_order is {h_fortran}, expected {fortran}")
    if data_offset is not None:
        expect(version == (1, 0), f".npy format version is {version}, expected (1, 0)")
        expect(offset == data_offset, f"data starts at byte {offset}, expected {data_offset}")

    a = np.load(path, mmap_mode=mode)
    expect(isinstance(a, np.memmap), f"np.load returned {type(a).__name__}, not a memory map")
    expect(a.dtype == dtype, f"dtype is {a.dtype}, expected {dtype}")
    expect(a.shape == shape, f"shape is {a.shape}, expected {shape}")
    if a.ndim >= 2 and min(a.shape) > 1:
        expect(np.isfortran(a) == fortran, f"np.isfortran is {np.isfortran(a)}, expected {fortran}")
    want = values(dtype, shape, which)
    if not np.array_equal(a, want):
        raise Mismatch(f"{which} values differ: {first_difference(a, want)}")

    # The bytes themselves, whatever the header says: the layout the order promises.
    raw = np.fromfile(path, dtype=dtype, count=want.size, offset=offset)
    flat = want.ravel(order='F' if fortran else 'C')
    expect(np.array_equal(raw, flat), f"the raw data at byte {offset} is not the {which} values in "
                                      f"{'Fortran' if fortran else 'C'} order")
    return a


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('action', choices=['create', 'update', 'check'])
    p.add_argument('path')
    p.add_argument('descr')
    p.add_argument('shape')
    p.add_argument('order', choices=['C', 'F'])
    p.add_argument('--values', choices=['initial', 'written'], default='initial')
    p.add_argument('--data-offset', type=int)
    args = p.parse_args()

    dtype = np.dtype(args.descr)
    shape = tuple(int(x) for x in args.shape.split(',') if x)
    fortran = args.order == 'F'

    if args.action == 'create':
        a = np.lib.format.open_memmap(args.path, mode='w+', dtype=dtype, shape=shape, fortran_order=fortran)
        a[...] = values(dtype, shape, 'initial')
        a.flush()
        del a
        check(args.path, dtype, shape, fortran, 'initial', None, 'r')
    elif args.action == 'update':
        a = check(args.path, dtype, shape, fortran, 'initial', args.data_offset, 'r+')
        a[...] = values(dtype, shape, 'written')
        a.flush()
        del a
    else:
        check(args.path, dtype, shape, fortran, args.values, args.data_offset, 'r')


if __name__ == '__main__':
    try:
        main()
    except Mismatch as e:
        print(f"numpy_rw.py {' '.join(sys.argv[1:])}: {e}", file=sys.stderr)
        sys.exit(1)
