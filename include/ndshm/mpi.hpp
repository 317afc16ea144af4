/// @file mpi.hpp
/// One copy per node in an MPI job: arrays, composite objects and store datasets that each node's
/// leader rank puts into an ordinary ndshm segment, which the other ranks of the node attach by name.
/// Data moves between nodes with MPI (leader to leader); inside a node nothing is copied.
///
///     MPI_Init(&argc, &argv);
///     {
///         ndshm::mpi::topology topo;                              // MPI_COMM_WORLD, split by node
///         auto a = ndshm::mpi::node_array<double>::create(topo, {n, 3}); // one segment per node
///         if (topo.rank() == 0) { fill(a.array()); }              // rank 0 writes its node's copy
///         a.bcast(0);                                             // every node's copy = rank 0's
///         double s = xt::sum(a.view())();                         // every rank reads, no copy
///         a.release();                                            // collective: leaders unlink
///     }
///     MPI_Finalize();
///
/// Optional: link `ndshm::mpi` (CMake option NDSHM_WITH_MPI, MPI 3.0 or later). This header gives
/// ndshm::mpi's topology (mpi_topology.hpp), node_array and node_tensor (mpi_array.hpp), node_object
/// (mpi_object.hpp) and node_store (mpi_store.hpp); no ndshm header but these and mpi_pool.hpp
/// (fork_pool's calls over MPI ranks) includes <mpi.h>.
///
/// Collectives: every static factory and every member documented as collective must be called by
/// every rank of the topology's communicator, in the same order, with the same arguments (except
/// those significant on the root only). Where it is cheap, ndshm checks that the ranks agree (dtype,
/// shape, order, root, key) and throws the same ndshm::error on every rank if they do not. A failure
/// on one rank (a full /dev/shm on one node, a missing file) is reported on every rank: the ranks that
/// failed throw their own exception, the others one of the same class that quotes it, so no rank is
/// left waiting in a collective. MPI errors become ndshm::error (code ndshm::errc::mpi_failure) with
/// MPI's own description; ndshm sets MPI_ERRORS_RETURN on its own communicators and never aborts.
///
/// Lifetime: a node's segment is owned by the rank that created it (the node's leader; the root for
/// node_object::from_root on the root's node). `release()` is the collective end: every rank of the
/// node drops its handles, then the owner unlinks the name, so the node's memory is returned as soon
/// as the last mapping goes. Destroying an object without release() is local and safe: the owner's
/// last handle unlinks the name, other ranks keep their mappings. If the job dies, the segments are
/// ordinary segments of a dead creator: `ndshm gc` removes them.
#ifndef NDSHM_MPI_HPP
#define NDSHM_MPI_HPP

#include <mpi.h>

#include "detail/mpi_calls.hpp" // MPI 3.0 or later
#include "error.hpp"
#include "file.hpp"
#include "mpi_array.hpp"
#include "mpi_object.hpp"
#include "mpi_store.hpp"
#include "mpi_topology.hpp"
#include "object.hpp"
#include "options.hpp"
#include "shared_ndarray.hpp"
#include "shared_tensor.hpp"
#include "store.hpp"

#endif
