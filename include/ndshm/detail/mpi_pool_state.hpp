/// @file detail/mpi_pool_state.hpp
/// What an ndshm::mpi::pool knows on every rank (the driver, the workers' ranks and pids, the pool's
/// own communicator), the collective that makes it, and the driver's end of the pool, which stops the
/// workers.
#ifndef NDSHM_DETAIL_MPI_POOL_STATE_HPP
#define NDSHM_DETAIL_MPI_POOL_STATE_HPP

#include <mpi.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "../error.hpp"
#include "mpi_agree.hpp"
#include "mpi_calls.hpp"
#include "mpi_code_ref.hpp"
#include "mpi_pool_messages.hpp"
#include "mpi_topology.hpp"
#include "segment_impl.hpp"

namespace ndshm::mpi::detail {

/// An ndshm::mpi::pool on one rank.
struct pool_state {
    std::shared_ptr<const topology_state> topo;
    std::size_t piece = pool_piece; ///< largest message of array bytes
    MPI_Comm comm = MPI_COMM_NULL;  ///< the pool's own duplicate of the topology's communicator
    int driver = 0;
    std::vector<int> ranks;        ///< the rank of each worker, worker i first
    std::vector<long> pids;        ///< of every rank
    core::process_identity parent; ///< the driver, which the workers' tasks see as their parent
    std::mutex call;               ///< calls are serialised
    std::uint64_t next_id = 0;     ///< of the last task sent
    std::size_t rr = 0;            ///< the worker a task for any worker goes to first

    bool is_driver() const noexcept { return topo->rank == driver; }
    int node_of(int rank) const { return topo->node_of[static_cast<std::size_t>(rank)]; }
    /// True if worker `w` runs on the driver's node (it attaches the driver's arrays by name).
    bool shares_memory(std::size_t w) const { return node_of(ranks.at(w)) == node_of(driver); }
    /// "OP on rank R (worker W, node N, pid P)": where a task failed.
    std::string where(const char* op, std::size_t w) const
    {
        const int rank = ranks[w];
        return std::string(op) + " on rank " + std::to_string(rank) + " (worker " + std::to_string(w) + ", node " +
               std::to_string(node_of(rank)) + ", pid " + std::to_string(pids[static_cast<std::size_t>(rank)]) + ")";
    }
};

/// The collective part of the pool's constructor over `topo`'s communicator: checks that every rank
/// passed the same driver and runs the same executable, duplicates the communicator, and learns every
/// rank's process.
inline void open_pool(pool_state& p, std::shared_ptr<const topology_state> topo, int driver_rank)
{
    const std::string op = "mpi::pool";
    p.topo = std::move(topo);
    const topology_state& s = *p.topo;
    p.piece = std::min(pool_piece, s.max_message);
    const int size = s.size;
    std::exception_ptr bad;
    try {
        if (driver_rank < 0 || driver_rank >= size) {
            core::raise<error>(op, "", "driver rank " + std::to_string(driver_rank) + " is not a rank",
                               "pass a rank from 0 to " + std::to_string(size - 1),
                               make_error_code(errc::invalid_argument));
        }
    } catch (...) {
        bad = std::current_exception();
    }
    agree(s.comm, s.rank, bad, op, "");
    p.driver = driver_rank;
    const code_ref probe = code_ref_of(reinterpret_cast<std::uintptr_t>(&code_ref_of));
    fingerprint fp;
    fp.add(static_cast<std::uint64_t>(driver_rank)).add(probe.module).add(probe.offset);
    check_same(s.comm, size, fp.value(),
               "driver rank " + std::to_string(driver_rank) + ", code offset " + std::to_string(probe.offset),
               "the driver rank and the executable (every rank must run the same one)", op, "");
    check(MPI_Comm_dup(s.comm, &p.comm), "MPI_Comm_dup", op, "");
    check(MPI_Comm_set_errhandler(p.comm, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler", op, "");
    const core::process_identity me = core::this_process();
    std::vector<std::uint64_t> ids(2 * static_cast<std::size_t>(size));
    const std::uint64_t mine[2] = {me.pid, me.start};
    check(MPI_Allgather(mine, 2, MPI_UINT64_T, ids.data(), 2, MPI_UINT64_T, p.comm), "MPI_Allgather", op, "");
    for (int r = 0; r < size; ++r) {
        if (r != p.driver) {
            p.ranks.push_back(r);
        }
        p.pids.push_back(static_cast<long>(ids[2 * static_cast<std::size_t>(r)]));
    }
    p.parent = {ids[2 * static_cast<std::size_t>(p.driver)], ids[2 * static_cast<std::size_t>(p.driver) + 1]};
}

/// The end of the pool on one rank: the driver tells every worker to stop; every rank frees the pool's
/// communicator (unless MPI is finalised).
inline void close_pool(pool_state& p) noexcept
{
    if (p.topo && p.is_driver() && p.comm != MPI_COMM_NULL) {
        task_message stop;
        stop.kind = 2;
        try {
            const std::string s = encode_message(stop);
            for (const int r : p.ranks) {
                (void)MPI_Send(s.data(), static_cast<int>(s.size()), MPI_BYTE, r, tag_task, p.comm);
            }
        } catch (...) {
        }
    }
    int finalized = 0;
    if (p.comm != MPI_COMM_NULL && MPI_Finalized(&finalized) == MPI_SUCCESS && !finalized) {
        (void)MPI_Comm_free(&p.comm);
    }
}

} // namespace ndshm::mpi::detail

#endif
