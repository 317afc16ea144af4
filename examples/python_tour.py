"""A tour of the Python module in one process: arrays, their lifetime, a queue and a lock.
examples/python_stream.cpp and .py show a C++ producer and a Python consumer.

    PYTHONPATH=build/python /usr/bin/python3 examples/python_tour.py
"""
import os

import numpy as np

import ndshm

# [readme]
a = ndshm.create((1000, 3), "float64")  # zero-filled, auto-named, owned by this process
a[0, 1] = 2.5  # a numpy.ndarray over the mapping: everything NumPy does works on it
a += 1.0
b = ndshm.from_array(np.arange(10, dtype=np.float32))  # copy an array in (its order is kept)
name = ndshm.name_of(a)  # pass this to any process, C++ or Python

c = ndshm.attach(name)  # zero copy; dtype, shape and order come from the segment
r = ndshm.attach(name, readonly=True)  # a read-only mapping: r is not writeable
print(f"attached {name}: {c.dtype} {c.shape}, sum {c.sum():g}")

ndshm.persist(b)  # b's segment outlives this process...
ndshm.unlink(ndshm.name_of(b))  # ...until someone unlinks it
del b  # its mapping goes with the last array over it
# [readme-end]

# [readme]
pid = os.fork()
if pid == 0:
    a[1] = 7.0  # a forked child writes through the inherited array...
    os._exit(0)  # ...and never unlinks its parent's segment, however it ends
os.waitpid(pid, 0)
assert (a[1] == 7.0).all()
# [readme-end]

# [readme]
q = ndshm.Queue.create(4)  # other processes: ndshm.Queue.attach(q.name)
q.push(ndshm.from_array(np.ones((2, 2))))  # hands the array over: only its name travels
m = q.pop(timeout=1.0)  # the popping process owns it now; None on time-out

with ndshm.Lock(a) as lock:  # one lock per segment, shared by every process that has it
    if lock.previous_owner_died:  # its last holder died holding it: repair the data
        a[0] = 0.0
    a[0, 0] += 1
# [readme-end]

assert m.tolist() == [[1.0, 1.0], [1.0, 1.0]]
records = {s["name"]: s for s in ndshm.list()}  # the records of `ndshm ls --json`
assert records[name]["kind"] == "array" and records[name]["creator"]["pid"] == os.getpid()
del a, c, r, m, lock  # the last arrays (and the lock) over the segment: this process unlinks its name
assert name not in {s["name"] for s in ndshm.list()}
print("python_tour: done")
