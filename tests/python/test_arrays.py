"""Arrays: create, from_array, attach and name_of, for every dtype in C and Fortran order, within Python
and between Python and a separate C++ process (the peer program), both ways."""
import os

import numpy as np
import pytest

import ndshm
from ndshm_testing import DTYPES, ORDERS, Peer, collect, pattern, run_peer, shm_exists


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_create_attach_every_dtype_and_order(dtype, order):
    a = ndshm.create((3, 4, 5), dtype, order=order)
    assert isinstance(a, np.ndarray)
    assert a.dtype == np.dtype(dtype) and a.shape == (3, 4, 5)
    assert a.flags.writeable and a.flags.aligned
    assert a.flags.f_contiguous if order == "F" else a.flags.c_contiguous
    assert not a.any()  # zero-filled
    name = ndshm.name_of(a)
    assert name.startswith("ndshm_") and len(name) <= 30 and shm_exists(name)

    a[...] = pattern(dtype, a.shape)
    b = ndshm.attach(name)  # another mapping of the same bytes
    assert b.dtype == a.dtype and b.shape == a.shape
    assert b.flags.f_contiguous if order == "F" else b.flags.c_contiguous
    np.testing.assert_array_equal(b, pattern(dtype, a.shape))
    b[...] = pattern(dtype, a.shape, shift=1)
    np.testing.assert_array_equal(a, pattern(dtype, a.shape, shift=1))  # written through b, seen in a

    # What NumPy sees of the segment as a file is the same array.
    np.testing.assert_array_equal(np.load("/dev/shm/" + name, mmap_mode="r"), a)

    del a, b
    collect()
    assert not shm_exists(name)  # the creating process's last array unlinked it


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_from_array_copies_values_and_keeps_the_order(dtype, order):
    src = np.asarray(pattern(dtype, (4, 6)), order=order)
    a = ndshm.from_array(src)
    np.testing.assert_array_equal(a, src)
    assert a.dtype == src.dtype
    assert a.flags.f_contiguous if order == "F" else a.flags.c_contiguous
    assert not np.shares_memory(a, src)
    src[0, 0] = src[1, 1]
    assert a[0, 0] == pattern(dtype, (4, 6))[0, 0]  # a copy

    other = "C" if order == "F" else "F"
    b = ndshm.from_array(src[::2, 1:], order=other)  # strided input, the other order
    np.testing.assert_array_equal(b, src[::2, 1:])
    assert b.flags.f_contiguous if other == "F" else b.flags.c_contiguous


def test_from_array_converts_byte_order_and_takes_any_array_like():
    big = np.arange(10, dtype=">f8")
    a = ndshm.from_array(big)
    assert a.dtype == np.dtype("<f8") and a.dtype.isnative
    np.testing.assert_array_equal(a, np.arange(10.0))
    b = ndshm.from_array([[1, 2], [3, 4]])
    assert b.dtype == np.int64 and b.tolist() == [[1, 2], [3, 4]]
    c = ndshm.from_array(np.float32(2.5))
    assert c.shape == () and c.dtype == np.float32 and c[()] == 2.5


def test_shapes_as_numpy_takes_them():
    assert ndshm.create(5).shape == (5,)
    assert ndshm.create(np.int64(3), "int8").shape == (3,)
    assert ndshm.create(()).shape == ()
    assert ndshm.create((2, 0, 3)).shape == (2, 0, 3)
    assert ndshm.create([2, 3], np.uint16).dtype == np.uint16
    assert ndshm.create(4, np.dtype("complex64")).dtype == np.complex64
    with pytest.raises(ndshm.Error, match="negative dimension -1"):
        ndshm.create((2, -1))
    with pytest.raises(TypeError):
        ndshm.create((2.5,))
    with pytest.raises(ndshm.Error, match="order 'X'"):
        ndshm.create(3, order="X")


def test_views_name_their_segment_and_keep_it_alive():
    a = ndshm.create((6, 4), "int32")
    name = ndshm.name_of(a)
    v = a[1:, ::2].T
    assert ndshm.name_of(v) == name
    assert ndshm.name_of(v[0]) == name
    assert ndshm.name_of(a.view(np.uint32)) == name
    del a
    collect()
    assert shm_exists(name)  # the view keeps the mapping, and the name, alive
    v[...] = 7
    del v
    collect()
    assert not shm_exists(name)


def test_name_of_refuses_other_arrays():
    with pytest.raises(ndshm.Error, match="not in an ndshm segment.*ndshm.from_array"):
        ndshm.name_of(np.zeros(3))
    with pytest.raises(ndshm.Error):
        ndshm.name_of(ndshm.create(3).copy())


def test_handle_describes_the_array():
    a = ndshm.create((2, 3), "float32", order="F")
    h = a.base
    assert isinstance(h, ndshm.Handle)
    assert (h.name, h.kind, h.dtype, h.shape, h.nbytes) == (ndshm.name_of(a), "array", np.float32, (2, 3), 24)
    assert h.fortran_order and not h.read_only
    assert repr(h) == f"<ndshm.Handle array '{h.name}' float32 (2, 3) Fortran order>"


def test_read_only_attach_cannot_be_written():
    a = ndshm.from_array(np.arange(5.0))
    r = ndshm.attach(ndshm.name_of(a), readonly=True)
    assert not r.flags.writeable and r.base.read_only
    np.testing.assert_array_equal(r, a)
    with pytest.raises(ValueError, match="read-only"):
        r[0] = 1
    with pytest.raises(ValueError):
        r.flags.writeable = True  # the mapping is PROT_READ: NumPy must not be able to write it
    a[0] = 9
    assert r[0] == 9


def test_user_chosen_names_and_the_posix_form():
    name = f"ndshm_pytest_named_{os.getpid()}"
    a = ndshm.create(3, name=name)
    assert ndshm.name_of(a) == name
    b = ndshm.attach("/" + name)  # as shm_open writes it
    assert ndshm.name_of(b) == name
    with pytest.raises(ndshm.AlreadyExists):
        ndshm.create(3, name=name)
    with pytest.raises(ndshm.Error, match="invalid segment name"):
        ndshm.create(3, name="no/slashes")


def test_a_numpy_made_npy_attaches_as_foreign():
    name = f"ndshm_pytest_foreign_{os.getpid()}"
    path = "/dev/shm/" + name
    m = np.lib.format.open_memmap(path, mode="w+", dtype=np.int16, shape=(4, 6), fortran_order=True)
    try:
        m[...] = pattern("int16", (4, 6))
        m.flush()
        a = ndshm.attach(name)
        assert a.flags.f_contiguous
        np.testing.assert_array_equal(a, pattern("int16", (4, 6)))
        a[0, 0] = 5
        assert m[0, 0] == 5
        with pytest.raises(ndshm.Error, match="no ndshm trailer"):
            ndshm.Lock(a)
        del a
        collect()
        assert os.path.exists(path)  # attach never owns
    finally:
        os.unlink(path)


def test_directory_backend(shm_dir):
    a = ndshm.create((3, 3), "uint8", directory=shm_dir)
    name = ndshm.name_of(a)
    assert shm_exists(name, shm_dir) and not shm_exists(name)
    b = ndshm.attach(name, directory=shm_dir)
    b[1, 1] = 3
    assert a[1, 1] == 3
    with pytest.raises(ndshm.NotFound):
        ndshm.attach(name)  # not in /dev/shm
    del a, b
    collect()
    assert not shm_exists(name, shm_dir)


# -- between processes: C++ makes, Python reads and writes, C++ checks; and the reverse ----------------

@pytest.mark.parametrize("shape", [(3, 4, 5), (7,), (), (2, 0)])
def test_cpp_creates_python_attaches(shape):
    peer = Peer("arrays-make", *shape)
    made = []
    while (line := peer.line()) != "ready":
        dtype, order, name = line.split()
        made.append((dtype, order, name))
    assert len(made) == 2 * len(DTYPES)
    arrays = []
    for dtype, order, name in made:
        a = ndshm.attach(name)
        assert a.dtype == np.dtype(dtype) and a.shape == shape, (dtype, order)
        if len(shape) > 1 and 0 not in shape:
            assert a.flags.f_contiguous if order == "F" else a.flags.c_contiguous
        np.testing.assert_array_equal(a, pattern(dtype, shape), err_msg=f"{dtype} {order}")
        a[...] = pattern(dtype, shape, shift=1)
        arrays.append(a)
    peer.send("check")
    assert peer.line() == "ok"
    peer.finish()
    for (dtype, _, name), a in zip(made, arrays):
        assert not shm_exists(name)  # the C++ creator's exit unlinked it
        np.testing.assert_array_equal(a, pattern(dtype, shape, shift=1))  # this mapping stays valid


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_python_creates_cpp_attaches(dtype, order):
    a = ndshm.create((4, 3, 2), dtype, order=order)
    a[...] = pattern(dtype, a.shape)
    run_peer("arrays-check", dtype, order, ndshm.name_of(a))  # checks, then writes the shifted pattern
    np.testing.assert_array_equal(a, pattern(dtype, a.shape, shift=1))


def test_star_import_leaves_builtins_alone():
    names = {}
    exec("from ndshm import *", names)
    assert "list" not in names and "gc" not in names and "create" in names and "Queue" in names
    assert all(hasattr(ndshm, n) for n in ndshm.__all__)
