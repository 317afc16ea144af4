"""Writes the seed corpora of fuzz_npy_header, fuzz_trailer and fuzz_segment into fuzz/corpus/.

    /usr/bin/python3 fuzz/make_corpus.py

Foreign .npy files come from NumPy itself; ndshm segments are built here byte for byte from the
layout in the README (the .npy header padded so that the data starts at byte 4096, then the 256-byte
trailer at the next multiple of 64). fuzz_object's seeds come from make_object_seeds (a C++ program:
objects are made with ndshm::share). Needs NumPy (Debian: python3-numpy for /usr/bin/python3).
"""

import io
import os
import struct

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def npy_bytes(arr, version=None, fortran=False):
    f = io.BytesIO()
    a = np.asfortranarray(arr) if fortran else arr
    np.lib.format.write_array(f, a, version=version)
    return f.getvalue()


def ndshm_segment(descr, shape, fortran=False, kind=1, state=1, published=True, persisted=False):
    """The bytes of a segment as ndshm writes it, data zero."""
    shape_text = "(%s)" % (", ".join(map(str, shape)) + ("," if len(shape) == 1 else ""))
    d = "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (descr, fortran, shape_text)
    hlen = 4096 - 10
    header = b"\x93NUMPY\x01\x00" + struct.pack("<H", hlen) + (d + " " * (hlen - len(d) - 1) + "\n").encode()
    n = 1
    for x in shape:
        n *= x
    nbytes = n * np.dtype(descr).itemsize
    end = 4096 + nbytes
    toff = (end + 63) // 64 * 64
    trailer = struct.pack("<8sIIIIIIQQQQQ", b"NDSHMTRL", 1, 256, kind, state, 1 if persisted else 0, 1000,
                          4242, 123456, 4096, nbytes, 1700000000 * 10**9)
    trailer += bytes(256 - len(trailer))
    seg = bytearray(header + bytes(nbytes) + bytes(toff - end) + trailer)
    if not published:
        seg[0] = 0
    return bytes(seg)


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def main():
    foreign = {
        "numpy_f8_1d": npy_bytes(np.arange(3, dtype="<f8")),
        "numpy_i4_fortran": npy_bytes(np.arange(6, dtype="<i4").reshape(2, 3), fortran=True),
        "numpy_b1_0d": npy_bytes(np.array(True)),
        "numpy_c16_empty": npy_bytes(np.zeros((0, 4), dtype="<c16")),
        "numpy_u2_v2": npy_bytes(np.arange(5, dtype="<u2"), version=(2, 0)),
        "numpy_big_endian": npy_bytes(np.arange(4, dtype=">f4")),
        "numpy_structured": npy_bytes(np.zeros(2, dtype=[("x", "<f8"), ("y", "<i2")])),
    }
    ndshm = {
        "ndshm_f8": ndshm_segment("<f8", (4,)),
        "ndshm_u1_fortran": ndshm_segment("|u1", (3, 5), fortran=True),
        "ndshm_persisted": ndshm_segment("<i8", (2, 2), persisted=True),
        "ndshm_unfinished": ndshm_segment("<f4", (8,), state=0, published=False),
        "ndshm_object": ndshm_segment("|u1", (256,), kind=2),
        "ndshm_channel": ndshm_segment("|u1", (128,), kind=3),
        "ndshm_queue": ndshm_segment("|u1", (512,), kind=4),
    }
    for name, data in list(foreign.items()) + list(ndshm.items()):
        write("npy_header", name, data)
        write("segment", name, data)
    write("segment", "zeros", bytes(4096))
    write("segment", "garbage", bytes(range(256)) * 4)
    for name, data in ndshm.items():
        write("trailer", "whole_" + name, b"\x00" + data)
    # Mode 1: the data is described by bytes 1-4 (offset 16, 32 bytes), the trailer follows at 64.
    t = struct.pack("<8sIIIIIIQQQQQ", b"NDSHMTRL", 1, 256, 1, 1, 0, 1000, 4242, 123456, 16, 32, 0)
    write("trailer", "described", b"\x01" + struct.pack("<HH", 16, 32) + bytes(64) + t + bytes(256 - len(t)))


if __name__ == "__main__":
    main()
