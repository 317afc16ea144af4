"""Python's half of examples/python_stream.cpp: reads every frame a C++ producer publishes in a channel,
in place, and sends the frames' means back as an array through a queue.

    python3 python_stream.py CHANNEL QUEUE

Needs the ndshm module (built with the project: PYTHONPATH=build/python) and NumPy.
"""
import sys

import numpy as np

import ndshm

# [readme]
frames = ndshm.Channel.attach(sys.argv[1])  # dtype and slot shape come from the segment
results = ndshm.Queue.attach(sys.argv[2])

means = []
for frame in frames:  # a read-only numpy.ndarray over each slot, no copy
    means.append(float(frame.mean()))  # the slot goes back to C++ when the loop moves on
print(f"python: {len(means)} frames of {frames.shape} {frames.dtype} from '{frames.name}'")

results.push(ndshm.from_array(np.array(means)))  # a new segment; C++ pops it and owns it
# [readme-end]
