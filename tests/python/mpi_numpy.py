"""Python half of tests/mpi_numpy.cpp: mpi4py ranks that read a node copy with NumPy by name.

World ranks 2 and 3 (this script) get the C++ ranks' segment names from world rank 0, open node
(rank - 2)'s copy with numpy.load(mmap_mode='r+'), check its dtype, shape and values (shape and dtype
come from the segment's .npy header), write into it for the C++ side to see, and join the verdict.
Needs mpi4py and NumPy for the python3 that runs it (Debian: python3-mpi4py, python3-numpy).
"""
import sys

import numpy as np
from mpi4py import MPI

world = MPI.COMM_WORLD
world.Split(1, world.rank)  # the C++ ranks split off with colour 0

n = np.zeros(1, dtype=np.int64)
world.Bcast([n, MPI.LONG_LONG], root=0)
buf = bytearray(int(n[0]))
world.Bcast([buf, MPI.CHAR], root=0)
names = buf.decode().split()

node = world.rank - 2
ok = 1
try:
    a = np.load('/dev/shm/' + names[node], mmap_mode='r+')
    want = np.arange(60.0).reshape(20, 3)
    if a.dtype != np.float64 or a.shape != (20, 3) or not np.array_equal(a, want):
        print(f"rank {world.rank}: node {node}'s copy is {a.dtype} {a.shape}, not the expected values",
              file=sys.stderr)
        ok = 0
    a[0, 0] = 1000.0 + world.rank
    a.flush()
    del a
except Exception as e:  # report, and let every rank reach the verdict
    print(f"rank {world.rank}: {e}", file=sys.stderr)
    ok = 0

world.Barrier()
# Buffer-based, like the C++ side's MPI_Allreduce of an int (lowercase allreduce would pickle).
verdict = np.zeros(1, dtype=np.intc)
world.Allreduce([np.array([ok], dtype=np.intc), MPI.INT], [verdict, MPI.INT], op=MPI.MIN)
sys.exit(0 if verdict[0] else 1)
