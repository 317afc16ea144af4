"""Ownership and cleanup, as in C++: the creating process's last array unlinks the name; persist hands it
over; attach never owns; forked children never unlink; free_session, free_all and unlink; nothing is
left behind."""
import os
import signal
import tempfile

import numpy as np
import pytest

import ndshm
from ndshm_testing import collect, in_child, shm_exists


def test_the_last_array_unlinks_what_this_process_created():
    a = ndshm.create(10)
    b = ndshm.from_array(np.ones(3))
    names = [ndshm.name_of(a), ndshm.name_of(b)]
    alias = a  # another reference to the same array
    del a
    collect()
    assert shm_exists(names[0])
    del alias, b
    collect()
    assert not any(shm_exists(n) for n in names)


def test_attach_never_owns():
    a = ndshm.create(4)
    name = ndshm.name_of(a)
    ndshm.persist(a)  # hands the name over: no array of this process unlinks it now
    del a
    collect()
    try:
        b = ndshm.attach(name)
        del b
        collect()
        assert shm_exists(name)
    finally:
        ndshm.unlink(name)
    assert not shm_exists(name)


def test_persist_by_array_and_by_name():
    a = ndshm.create(3, "int8")
    b = ndshm.create(3, "int8")
    na, nb = ndshm.name_of(a), ndshm.name_of(b)
    try:
        ndshm.persist(a)
        ndshm.persist(nb)
        del a, b
        collect()
        assert shm_exists(na) and shm_exists(nb)
        assert ndshm.info(na)["persisted"] is True and ndshm.info(nb)["persisted"] is True
    finally:
        ndshm.unlink(na)
        ndshm.unlink(nb)
    with pytest.raises(ndshm.NotFound):
        ndshm.unlink(na)


def test_persist_of_a_name_this_process_does_not_own():
    a = ndshm.create(3)
    name = ndshm.name_of(a)
    ndshm.persist(a)
    try:
        with pytest.raises(ndshm.Error, match=f"persist '{name}': this process does not own the segment"):
            ndshm.persist(name)  # once handed over, it is no longer this process's to hand over
    finally:
        ndshm.unlink(name)
    with pytest.raises(ndshm.Error, match="neither a segment name nor an array"):
        ndshm.persist(np.zeros(2))


def test_a_forked_child_never_unlinks():
    a = ndshm.create(8, "int64")
    name = ndshm.name_of(a)

    def child():
        a[...] = 7  # the child writes through the inherited mapping
        b = a[2:]
        del b
        collect()
        ndshm.free_session()  # unlinks only what the child created: nothing
        return 0 if shm_exists(name) else 1

    assert in_child(child) == 0
    assert shm_exists(name)
    assert (a == 7).all()

    def child_persists_by_name():
        try:
            ndshm.persist(name)
        except ndshm.Error:
            return 0  # the parent's name is not the child's to hand over
        return 1

    assert in_child(child_persists_by_name) == 0
    assert ndshm.info(name)["persisted"] is False
    del a
    collect()
    assert not shm_exists(name)


def test_a_child_killed_while_attached_leaks_nothing():
    a = ndshm.create(16)
    name = ndshm.name_of(a)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        b = ndshm.attach(name)
        b[0] = 1
        os.write(w, b"x")
        signal.pause()  # until killed
        os._exit(1)
    os.close(w)
    assert os.read(r, 1) == b"x"
    os.close(r)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    assert a[0] == 1 and shm_exists(name)
    del a
    collect()
    assert not shm_exists(name)


def test_free_session_unlinks_what_this_process_created_and_arrays_stay_valid():
    a = ndshm.create(5)
    b = ndshm.from_array(np.arange(4))
    names = [ndshm.name_of(a), ndshm.name_of(b)]
    assert ndshm.free_session() >= 2
    assert not any(shm_exists(n) for n in names)
    b[0] = 10  # the mappings stay valid
    assert b.tolist() == [10, 1, 2, 3]
    with pytest.raises(ndshm.NotFound):
        ndshm.attach(names[0])


def test_unlink_removes_the_name_at_once():
    a = ndshm.create(5)
    name = ndshm.name_of(a)
    ndshm.unlink(name)
    assert not shm_exists(name)
    a[0] = 1  # still mapped
    with pytest.raises(ndshm.NotFound):
        ndshm.attach(name)
    with pytest.raises(ndshm.NotFound):
        ndshm.unlink(name)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run free_all as a user of its own")
def test_free_all_sweeps_only_the_calling_users_segments():
    # free_all removes every ndshm_ segment of the calling user; tests running beside this one are of
    # the same user, so a child does it as `nobody`, which owns nothing else.
    mine = ndshm.create(3)
    backend = tempfile.mkdtemp(prefix="ndshm_test_")  # outside pytest's 0700 directories
    os.chmod(backend, 0o777)

    def child():
        os.setgid(65534)
        os.setuid(65534)
        made = [ndshm.create(2), ndshm.create(3, "int8"), ndshm.create(4, directory=backend)]
        for a in made:
            ndshm.persist(a)  # so that only free_all removes them
        names = [ndshm.name_of(a) for a in made]
        if not (shm_exists(names[0]) and shm_exists(names[2], backend)):
            return 2
        removed = ndshm.free_all(directory=backend)
        gone = not any(shm_exists(n) for n in names[:2]) and not shm_exists(names[2], backend)
        return 0 if removed == 3 and gone else 1

    try:
        assert in_child(child) == 0
        assert shm_exists(ndshm.name_of(mine))  # root's segment is untouched
    finally:
        os.rmdir(backend)


def test_a_forked_child_never_removes_a_queue_or_a_channel():
    q = ndshm.Queue.create(2)
    ch = ndshm.Channel.create(4, "int16", slots=2)
    q.push(ndshm.create(3))
    names = [q.name, ch.name]

    def child():
        nonlocal q, ch
        q = ch = None  # the child's last handles of the parent's queue and channel
        collect()
        ndshm.free_session()
        return 0 if all(shm_exists(n) for n in names) else 1

    assert in_child(child) == 0
    assert all(shm_exists(n) for n in names) and len(q) == 1
    del q, ch
    collect()
    assert not any(shm_exists(n) for n in names)
