"""Queue, Channel and Lock: within Python, with forked Python children, and with a separate C++ process
(the peer program) on either side. Blocking calls release the GIL and can be interrupted."""
import os
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest

import ndshm
from ndshm_testing import DTYPES, Peer, collect, in_child, pattern, shm_exists


# -- Queue ----------------------------------------------------------------------------------------

def queued_array(i):
    """The i-th array of the cross-language queue tests (tests/python_peer.cpp makes the same)."""
    dtype = DTYPES[i % len(DTYPES)]
    return dtype, pattern(dtype, (i + 1, 3), shift=i)


def test_queue_moves_ownership_within_a_process():
    q = ndshm.Queue.create(4)
    assert q.capacity == 4 and len(q) == 0 and not q.closed and q.front_dtype is None
    a = ndshm.from_array(np.arange(6, dtype=np.int16).reshape(2, 3))
    name = ndshm.name_of(a)
    assert q.push(a) is True
    assert not a.flags.writeable  # it belongs to the queue now, then to whoever pops it
    assert len(q) == 1 and q.front_dtype == np.int16
    b = q.pop()
    assert ndshm.name_of(b) == name and b.flags.writeable
    np.testing.assert_array_equal(b, np.arange(6).reshape(2, 3))
    del a
    collect()
    assert shm_exists(name)  # the pusher's array no longer owns the name
    del b
    collect()
    assert not shm_exists(name)  # the popper's did


def test_queue_pops_every_dtype_and_order():
    q = ndshm.Queue.create(len(DTYPES) * 2)
    for dtype in DTYPES:
        for order in "CF":
            q.push(ndshm.from_array(np.asarray(pattern(dtype, (3, 2)), order=order)))
    q.close()
    got = [(a.dtype.name, a.flags.f_contiguous and not a.flags.c_contiguous, a) for a in q]
    assert [(d, f) for d, f, _ in got] == [(np.dtype(d).name, f) for d in DTYPES for f in (False, True)]
    for dtype, _, a in got:
        np.testing.assert_array_equal(a, pattern(dtype, (3, 2)))


def test_queue_timeouts_close_and_refusals():
    q = ndshm.Queue.create(1)
    assert q.pop(timeout=0) is None and q.pop(timeout=0.01) is None and not q.closed
    a, b = ndshm.create(2), ndshm.create(3)
    assert q.push(a, timeout=0)
    assert q.push(b, timeout=0.01) is False  # full: b stays the caller's
    with pytest.raises(ValueError, match="non-negative"):
        q.push(b, timeout=-1)  # as queue.Queue: a negative timeout is refused, None waits for ever
    with pytest.raises(ValueError, match="non-negative"):
        q.pop(timeout=-0.5)
    assert b.flags.writeable
    with pytest.raises(ndshm.Error, match="not in an ndshm segment"):
        q.push(np.zeros(2))
    with pytest.raises(ndshm.Error, match="view of part of the segment"):
        q.push(b[1:])
    with pytest.raises(ndshm.Error, match="this process does not own it"):
        q.push(ndshm.attach(ndshm.name_of(b)))
    q.close()
    with pytest.raises(ndshm.Error, match="the queue is closed"):
        q.push(b)
    assert q.closed and q.pop().shape == (2,) and q.pop() is None  # drained, then None at once
    name_b = ndshm.name_of(b)
    del b
    collect()
    assert not shm_exists(name_b)


def test_queue_pop_with_a_dtype_keeps_a_mismatch_queued():
    q = ndshm.Queue.create(2)
    q.push(ndshm.create(3, "float32"))
    with pytest.raises(ndshm.DtypeMismatch, match="holds float32, not float64 as requested; it stays queued"):
        q.pop(dtype="float64")
    assert len(q) == 1
    assert q.pop(dtype=np.float32).dtype == np.float32


def test_the_queue_owner_removes_what_is_still_queued():
    q = ndshm.Queue.create(3)
    arrays = [ndshm.create(4), ndshm.create(5)]
    names = [ndshm.name_of(a) for a in arrays] + [q.name]
    for a in arrays:
        q.push(a)
    del q, arrays
    collect()
    assert not any(shm_exists(n) for n in names)


def test_a_blocked_pop_releases_the_gil():
    q = ndshm.Queue.create(1)
    out = []
    t = threading.Thread(target=lambda: out.append(q.pop()))
    t.start()  # blocks in pop, without the GIL, until the push below
    q.push(ndshm.from_array(np.arange(3)))
    t.join(timeout=60)
    assert not t.is_alive() and out[0].tolist() == [0, 1, 2]


def test_blocked_channel_calls_and_lock_acquire_release_the_gil():
    # Each thread blocks in the call until this thread, which needs the GIL to go on, unblocks it.
    ch = ndshm.Channel.create(3, "float64", slots=1)
    received = []

    def receive():
        with ch.receive() as frame:
            received.append(frame.tolist())

    t = threading.Thread(target=receive)
    t.start()  # blocks in receive until the publication below
    f = ch.loan()
    f[...] = 7
    ch.publish(f)
    t.join(timeout=60)
    assert not t.is_alive() and received == [[7.0, 7.0, 7.0]]

    held = ch.loan()  # the only slot: a loan in another thread waits for it
    loaned = []
    t = threading.Thread(target=lambda: loaned.append(ch.loan()))
    t.start()
    del held  # an unpublished loan goes back when its array does
    collect()
    t.join(timeout=60)
    assert not t.is_alive() and loaned[0].shape == (3,)

    a = ndshm.create(4, "float64")
    mine = ndshm.Lock(a)
    mine.acquire()
    got = []

    def take():
        other = ndshm.Lock(a)  # one Lock object per thread
        got.append(other.acquire())
        other.release()

    t = threading.Thread(target=take)
    t.start()  # blocks in acquire until the release below
    mine.release()
    t.join(timeout=60)
    assert not t.is_alive() and got == [True]


def test_ctrl_c_interrupts_a_blocked_pop():
    script = (
        "import ndshm\n"
        "q = ndshm.Queue.create(1)\n"
        "try:\n"
        "    print('waiting', flush=True)\n"
        "    q.pop()\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted', flush=True)\n"
    )
    p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline() == "waiting\n"
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=60)
    assert out == "interrupted\n" and p.returncode == 0


def test_cpp_pushes_python_pops():
    q = ndshm.Queue.create(3)
    count = 30
    peer = Peer("queue-produce", q.name, count)
    pushed = []
    popped = []
    for i, a in enumerate(q):  # until the C++ producer closes the queue
        dtype, expected = queued_array(i)
        assert a.dtype == np.dtype(dtype) and a.flags.writeable
        np.testing.assert_array_equal(a, expected)
        popped.append(ndshm.name_of(a))
    pushed = [line.split()[1] for line in peer.finish()]
    assert popped == pushed and len(popped) == count
    del a
    collect()
    assert not any(shm_exists(n) for n in popped)  # this process owned each popped array, and dropped it


def test_python_pushes_cpp_pops():
    q = ndshm.Queue.create(3)
    count = 30
    peer = Peer("queue-consume", q.name)
    pushed = []
    for i in range(count):
        _, values = queued_array(i)
        a = ndshm.from_array(values)
        pushed.append(ndshm.name_of(a))
        q.push(a)  # waits while the consumer is behind
    q.close()
    lines = peer.finish()
    assert [line.split()[1] for line in lines] == pushed
    assert [line.split()[2] for line in lines] == [DTYPES[i % len(DTYPES)] for i in range(count)]
    collect()
    assert not any(shm_exists(n) for n in pushed)  # the C++ consumer owned them and is gone


# -- Channel --------------------------------------------------------------------------------------

def frame_values(i, shape=(4, 5)):
    """Frame i of the cross-language channel tests: 1000 i + k at flat index k, float32."""
    return (1000 * i + np.arange(int(np.prod(shape)), dtype=np.float32)).reshape(shape)


def test_channel_loan_publish_receive():
    ch = ndshm.Channel.create((2, 3), "int32", slots=2)
    assert (ch.shape, ch.dtype, ch.slots, ch.closed) == ((2, 3), np.int32, 2, False)
    f = ch.loan()
    assert f.base.kind == "loan" and f.flags.writeable and not f.any()
    f[...] = 5
    ch.publish(f)
    assert not f.flags.writeable
    with pytest.raises(ndshm.Error, match="empty or was not loaned"):
        ch.publish(f)  # once only
    reader = ndshm.Channel.attach(ch.name)
    with reader.receive() as frame:
        assert frame.base.kind == "received" and not frame.flags.writeable
        assert (frame == 5).all()
        with pytest.raises(ValueError):
            frame.flags.writeable = True
    received = reader.receive(timeout=0)
    assert not received and received.array is None and received.index is None
    with received as nothing:
        assert nothing is None


def test_channel_slots_return_to_the_pool():
    ch = ndshm.Channel.create(3, "float64", slots=1)
    f = ch.loan()
    assert ch.loan(timeout=0) is None  # the only slot is loaned
    del f
    collect()
    f = ch.loan(timeout=0)  # an unpublished loan went back when its array did
    ch.publish(f)
    assert ch.loan(timeout=0) is None  # published, not yet received
    with ch.receive() as frame:
        assert frame.shape == (3,)
        assert ch.loan(timeout=0) is None  # being read
    assert ch.loan(timeout=0) is not None  # released at the end of the with block


def test_channel_refusals():
    ch = ndshm.Channel.create((2,), "uint8", slots=2)
    with pytest.raises(ndshm.Error, match="not in an ndshm segment"):
        ch.publish(np.zeros(2, np.uint8))
    with pytest.raises(ndshm.Error, match="not a loan of this Channel"):
        ch.publish(ndshm.create(2, "uint8"))
    f = ch.loan()
    with pytest.raises(ndshm.Error, match="view of part"):
        ch.publish(f[1:])
    with pytest.raises(ndshm.Error, match="a channel slot"):
        ndshm.persist(f)
    with pytest.raises(ndshm.Error, match="a channel slot"):
        ndshm.Queue.create(1).push(f)
    with pytest.raises(ndshm.DtypeMismatch, match="carries uint8, not int16"):
        ndshm.Channel.attach(ch.name, dtype="int16")
    array = ndshm.create(3)
    with pytest.raises(ndshm.FormatError, match="not a channel"):
        ndshm.Channel.attach(ndshm.name_of(array))
    with pytest.raises(ndshm.FormatError, match="is a channel, not an array"):
        ndshm.attach(ch.name)
    with pytest.raises(ndshm.NotFound):
        ndshm.Channel.attach("ndshm_no_such_channel")
    ch.close()
    with pytest.raises(ndshm.Error, match="the channel is closed"):
        ch.loan()


def test_python_publishes_cpp_receives():
    ch = ndshm.Channel.create((4, 5), "float32", slots=3)
    count = 50
    peer = Peer("channel-consume", ch.name, count)
    for i in range(count):
        f = ch.loan()  # waits while all three slots are in flight
        f[...] = frame_values(i)
        ch.publish(f)
    ch.close()
    assert peer.finish() == [f"received {count}"]


def test_cpp_publishes_python_receives():
    count = 50
    peer = Peer("channel-produce", count, 3)
    kind, name = peer.line().split()
    assert kind == "channel"
    ch = ndshm.Channel.attach(name)
    assert (ch.dtype, ch.shape, ch.slots) == (np.float32, (4, 5), 3)
    n = 0
    for frame in ch:  # released when the loop moves on; ends when the producer closed and all is read
        np.testing.assert_array_equal(frame, frame_values(n))
        n += 1
    assert n == count
    assert peer.line() == "closed"
    peer.send("done")
    peer.finish()
    del ch, frame
    collect()
    assert not shm_exists(name)


# -- Lock -----------------------------------------------------------------------------------------

def test_lock_as_a_context_manager_and_like_threading_lock():
    a = ndshm.create(2, "int64")
    lock = ndshm.Lock(a)
    assert lock.name == ndshm.name_of(a) and not lock.locked
    with lock as held:
        assert held is lock and lock.locked and not lock.previous_owner_died
        a[0] += 1
        with pytest.raises(ndshm.Error, match="already holds it"):
            lock.acquire()
    assert not lock.locked
    assert lock.acquire(blocking=False) and lock.locked
    lock.release()
    with pytest.raises(ValueError, match="non-negative"):
        lock.acquire(timeout=-2)  # as threading.Lock: only -1 means for ever
    assert lock.acquire(timeout=-1) and lock.locked
    lock.release()
    with pytest.raises(ndshm.Error, match="unlock"):
        lock.release()
    with pytest.raises(ValueError):
        lock.acquire(blocking=False, timeout=1)
    by_name = ndshm.Lock(ndshm.name_of(a))
    with by_name:
        # The lock belongs to the thread that took it: another thread (its own Lock object) waits.
        got = []
        t = threading.Thread(target=lambda: got.append(ndshm.Lock(a).acquire(timeout=0.01)))
        t.start()
        t.join(timeout=60)
        assert got == [False]


def test_lock_refuses_what_has_no_writable_lock():
    a = ndshm.create(2)
    with pytest.raises(ndshm.Error, match="read-only"):
        ndshm.Lock(ndshm.attach(ndshm.name_of(a), readonly=True))
    with pytest.raises(ndshm.Error, match="not in an ndshm segment"):
        ndshm.Lock(np.zeros(2))


def test_a_python_holder_that_dies_is_reported():
    a = ndshm.create(2, "int64")

    def child():
        lock = ndshm.Lock(a)
        lock.acquire()
        a[1] = 1  # "an update in progress"
        os._exit(0)  # dies holding the lock (a Lock that goes normally releases it)

    assert in_child(child) == 0
    with ndshm.Lock(a) as lock:
        assert lock.previous_owner_died and a[1] == 1
        a[1] = 0  # repaired
    with ndshm.Lock(a) as lock:
        assert not lock.previous_owner_died


def test_a_cpp_holder_killed_is_reported():
    a = ndshm.create(1, "float64")
    peer = Peer("lock-hold", ndshm.name_of(a))
    assert peer.line() == "locked"
    lock = ndshm.Lock(a)
    assert lock.acquire(blocking=False) is False
    assert lock.acquire(timeout=0.01) is False
    peer.kill(signal.SIGKILL)
    assert lock.acquire(timeout=60) and lock.previous_owner_died
    lock.release()


def test_lock_counts_exactly_across_python_and_cpp_processes():
    a = ndshm.create(1, "int64")
    times = 300

    def child():
        lock = ndshm.Lock(a)
        for _ in range(times):
            with lock:
                a[0] += 1
        return 0

    pids = []
    for _ in range(2):
        pid = os.fork()
        if pid == 0:
            code = 99
            try:
                code = child()
            finally:
                os._exit(code)
        pids.append(pid)
    peer = Peer("lock-count", ndshm.name_of(a), times)
    child()  # this process too
    peer.finish()
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    assert a[0] == 4 * times


def test_timeouts_in_seconds_none_or_infinite():
    q = ndshm.Queue.create(1)
    with pytest.raises(ValueError, match="NaN"):
        q.pop(timeout=float("nan"))
    q.push(ndshm.create(1), timeout=float("inf"))
    assert q.pop(timeout=float("inf")).shape == (1,)
    lock = ndshm.Lock(ndshm.create(1))
    assert lock.acquire(timeout=float("inf"))
    lock.release()
