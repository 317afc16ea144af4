/// @file ndshm.hpp
/// ndshm's core: shared_ndarray, shared_tensor, attach_any, the segment functions, options, dtypes and
/// the errors. Each further area has its own header, included only by those who use it:
///
/// | header | what |
/// | --- | --- |
/// | `ndshm/object.hpp` | composite objects: `share`, `load` (cereal) |
/// | `ndshm/file.hpp` | `.npy` and object files |
/// | `ndshm/store.hpp` | a dataset loaded once per machine |
/// | `ndshm/zstd.hpp` | compressed object files (links libzstd) |
/// | `ndshm/mpi.hpp` | one copy per node in an MPI job (links MPI: target `ndshm::mpi`) |
/// | `ndshm/mpi_pool.hpp` | `mpi::pool`: fork_pool's calls over the ranks of an MPI job (links MPI) |
/// | `ndshm/queue.hpp` | `array_queue`: arrays handed between processes |
/// | `ndshm/channel.hpp` | `channel<T>`: loan/publish over pre-faulted slots |
/// | `ndshm/pool.hpp` | `fork_pool`: forked workers with map, scatter, gather |
/// | `ndshm/dict.hpp` | `shared_dict`: a named dictionary of shared arrays, changed by any process |
/// | `ndshm/list.hpp` | `shared_list`: a named list of shared arrays, changed by any process |
/// | `ndshm/lock.hpp` | `array_lock`: a per-array lock robust to a holder's death |
/// | `ndshm/uninterruptible.hpp` | a guard that defers SIGINT/SIGTERM |
/// | `ndshm/inspect.hpp` | `inspect`, `list_segments`, `gc`: what the `ndshm` tool uses |
/// | `ndshm/all.hpp` | all of the above |
#ifndef NDSHM_NDSHM_HPP
#define NDSHM_NDSHM_HPP

#include "any_ndarray.hpp"
#include "dtype.hpp"
#include "error.hpp"
#include "options.hpp"
#include "segment.hpp"
#include "shared_ndarray.hpp"
#include "shared_tensor.hpp"

#endif
