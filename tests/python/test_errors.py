"""Bad input raises the exception of ndshm's family that fits, with the message C++ gives for the same
operation (the peer program runs it and prints the C++ exception's class and message)."""
import errno
import os

import numpy as np
import pytest

import ndshm
from ndshm_testing import Peer, collect, run_peer, shm_exists

CLASSES = {
    "not_found": ndshm.NotFound,
    "already_exists": ndshm.AlreadyExists,
    "permission_denied": ndshm.PermissionDenied,
    "dtype_mismatch": ndshm.DtypeMismatch,
    "format_error": ndshm.FormatError,
    "error": ndshm.Error,
}


def cpp_error(operation, name):
    """(exception class, message) of the C++ peer running `operation` on `name`."""
    kind, _, message = run_peer("error", operation, name)[0].partition("\t")
    return CLASSES[kind], message


def same_as_cpp(excinfo, operation, name):
    cls, message = cpp_error(operation, name)
    assert type(excinfo.value) is cls
    assert str(excinfo.value) == message


@pytest.fixture
def raw_segment():
    """Writes bytes into a new /dev/shm file of this user (mode 0600); removes it afterwards."""
    made = []

    def make(data):
        name = f"ndshm_pytest_raw_{os.getpid()}_{len(made)}"
        fd = os.open("/dev/shm/" + name, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        made.append(name)
        return name

    yield make
    for name in made:
        if shm_exists(name):
            os.unlink("/dev/shm/" + name)


def test_the_family():
    assert issubclass(ndshm.Error, RuntimeError)
    for cls in (ndshm.NotFound, ndshm.AlreadyExists, ndshm.PermissionDenied, ndshm.OutOfSpace,
                ndshm.DtypeMismatch, ndshm.FormatError, ndshm.SerializationError):
        assert issubclass(cls, ndshm.Error)
    assert issubclass(ndshm.NotFound, FileNotFoundError)
    assert issubclass(ndshm.AlreadyExists, FileExistsError)
    assert issubclass(ndshm.PermissionDenied, PermissionError)
    assert issubclass(ndshm.OutOfSpace, OSError)
    assert issubclass(ndshm.DtypeMismatch, TypeError)
    assert issubclass(ndshm.FormatError, ValueError)


def test_missing_name():
    name = f"ndshm_pytest_missing_{os.getpid()}"
    with pytest.raises(ndshm.NotFound) as e:
        ndshm.attach(name)
    same_as_cpp(e, "attach", name)
    assert e.value.errno == errno.ENOENT and e.value.category == "generic"
    assert e.value.reason == os.strerror(errno.ENOENT)
    assert str(e.value) == (f"ndshm: attach '{name}': shm_open failed: No such file or directory; check the name "
                            "(ndshm ls lists segments) or whether its owner already removed it")
    with pytest.raises(FileNotFoundError):  # what multiprocessing.shared_memory users catch
        ndshm.attach(name)


def test_corrupt_segment(raw_segment):
    name = raw_segment(b"\x93NUMPY\x01\x00" + b"\x10\x00" + b"{'descr': 'garbage" + b" " * 4096)
    with pytest.raises(ndshm.FormatError) as e:
        ndshm.attach(name)
    same_as_cpp(e, "attach", name)
    assert e.value.category == "ndshm"
    not_npy = raw_segment(b"this is not a .npy file at all" * 10)
    with pytest.raises(ndshm.FormatError) as e:
        ndshm.attach(not_npy)
    same_as_cpp(e, "attach", not_npy)


def test_truncated_segment(raw_segment):
    a = ndshm.from_array(np.arange(1000.0))
    with open("/dev/shm/" + ndshm.name_of(a), "rb") as f:
        head = f.read(4096 + 100)  # the header and a little of the data
    name = raw_segment(head)
    with pytest.raises(ndshm.FormatError, match="truncated|shorter") as e:
        ndshm.attach(name)
    same_as_cpp(e, "attach", name)


def test_unfinished_segment(raw_segment):
    name = raw_segment(bytes(8192))  # the magic is not written yet: its creator never published it
    with pytest.raises(ndshm.FormatError, match="unfinished") as e:
        ndshm.attach(name)
    assert e.value.category == "ndshm"
    assert e.value.reason == "unfinished segment (not published by its creator)"
    assert e.value.errno == errno.EAGAIN  # the condition ndshm::errc::unfinished compares equal to


def test_wrong_kind():
    q = ndshm.Queue.create(1)
    with pytest.raises(ndshm.FormatError, match="is a queue, not an array") as e:
        ndshm.attach(q.name)
    same_as_cpp(e, "attach", q.name)
    with pytest.raises(ndshm.FormatError, match="not a channel"):
        ndshm.Channel.attach(q.name)


def test_dtype_mismatch_of_a_queue_and_a_channel():
    q = ndshm.Queue.create(1)
    q.push(ndshm.create(4, "float32"))
    with pytest.raises(ndshm.DtypeMismatch) as e:
        q.pop(timeout=0, dtype="float64")
    same_as_cpp(e, "pop-float64", q.name)
    # ndshm's own category, like every other dtype_mismatch (attach, load, the channel)
    assert e.value.category == "ndshm" and e.value.reason == "dtype mismatch"

    ch = ndshm.Channel.create(3, "complex64", slots=1)
    with pytest.raises(ndshm.DtypeMismatch) as e:
        ndshm.Channel.attach(ch.name, dtype="int16")
    same_as_cpp(e, "channel-int16", ch.name)


def test_name_taken():
    a = ndshm.create(2)
    name = ndshm.name_of(a)
    with pytest.raises(ndshm.AlreadyExists) as e:
        ndshm.create(1, "float64", name=name)
    same_as_cpp(e, "create", name)
    assert isinstance(e.value, FileExistsError)
    assert shm_exists(name) and a.shape == (2,)  # the existing segment is not touched


def test_invalid_name():
    with pytest.raises(ndshm.Error) as e:
        ndshm.attach("../etc/passwd")
    same_as_cpp(e, "attach", "../etc/passwd")
    assert e.value.category == "ndshm" and e.value.reason == "invalid argument"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a segment to another user")
def test_another_users_segment():
    a = ndshm.create(3)
    name = ndshm.name_of(a)
    os.chown("/dev/shm/" + name, 65534, 65534)
    with pytest.raises(ndshm.PermissionDenied, match="belongs to uid 65534") as e:
        ndshm.attach(name)
    same_as_cpp(e, "attach", name)
    assert isinstance(e.value, PermissionError)
    with pytest.raises(ndshm.PermissionDenied):
        ndshm.info(name)


def test_out_of_space():
    with pytest.raises(ndshm.OutOfSpace, match=r"needs .* but /dev/shm has .* free.*--shm-size") as e:
        ndshm.create((1 << 50,), "uint8")
    assert isinstance(e.value, OSError) and e.value.errno == errno.ENOSPC
    collect()
    assert not [s for s in ndshm.list() if s["bytes"] >= 1 << 50]  # nothing left behind


def test_unsupported_dtypes():
    for dtype, match in [("float16", "dtype 'float16' is not one ndshm stores"),
                         ("U3", "dtype '<U3' is not one ndshm stores"),
                         (object, "dtype 'object' is not one ndshm stores"),
                         ("datetime64[s]", "is not one ndshm stores"),
                         (">f8", "dtype '>f8' is not in this machine's byte order"),
                         ([("x", "<f4"), ("y", "<i4")], "is structured")]:
        with pytest.raises(ndshm.Error, match=match) as e:
            ndshm.create(3, dtype)
        assert e.value.reason == "unsupported dtype"
    with pytest.raises(ndshm.Error, match="is not one ndshm stores"):
        ndshm.from_array(np.zeros(3, np.float16))
    with pytest.raises(TypeError):
        ndshm.create(3, "no such dtype")


def test_messages_name_the_operation_and_the_segment():
    q = ndshm.Queue.create(1)
    q.close()
    with pytest.raises(ndshm.Error) as e:
        q.push(ndshm.create(1))
    assert str(e.value) == (f"ndshm: push '{q.name}': the queue is closed; push before close(); the item stays "
                            "with the caller")


def test_peer_reports_no_error_for_a_good_segment():
    a = ndshm.create(2)
    peer = Peer("error", "attach", ndshm.name_of(a))
    assert peer.finish() == ["none\t"]
