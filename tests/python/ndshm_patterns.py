"""The value pattern the NumPy interop tests put in arrays (tests/test_util.hpp: pattern_value)."""
import numpy as np


def pattern(dtype, shape, error=ValueError):
    """The array for dtype and shape in C order: value at flat index k depends only on k and the kind."""
    n = 1
    for d in shape:
        n *= d
    k = np.arange(n, dtype=np.int64).reshape(shape)
    kind = dtype.kind
    if kind == 'b':
        v = k % 3 == 0
    elif kind == 'i':
        v = (7 * k + 3) % 100 - 50
    elif kind == 'u':
        v = (7 * k + 3) % 100
    elif kind == 'f':
        v = k / 2 - 3
    elif kind == 'c':
        v = (k / 2 - 3) + 1j * (k / 4 + 1)
    else:
        raise error(f"no test values for dtype {dtype}")
    return v.astype(dtype)
