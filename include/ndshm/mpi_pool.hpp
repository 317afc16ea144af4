/// @file mpi_pool.hpp
/// `ndshm::mpi::pool`: fork_pool's call set (run, broadcast, gather, scatter, scatterv, map, map_reduce)
/// over the ranks of an MPI job. One rank, the driver, makes the calls; every other rank is a worker.
/// Workers on the driver's node attach its shared arrays by name, as fork_pool's workers do; workers on
/// other nodes get the rows a task works on by MPI in a node-local segment, and the rows a task writes
/// go back by MPI into the driver's array. A program moves from one machine to a cluster by changing
/// the pool it constructs:
///
///     MPI_Init(&argc, &argv);
///     {
///         ndshm::mpi::pool pool;          // collective; on the workers it serves tasks, then returns
///         if (pool.driver()) {            // rank 0: the same code as with ndshm::fork_pool
///             auto total = pool.map_reduce(&partial_sum, a, ndshm::reduce::sum);
///         }
///     }                                   // the driver's pool ends: the workers' constructors return
///     MPI_Finalize();
///
/// Optional, as ndshm/mpi.hpp: link `ndshm::mpi` (CMake option NDSHM_WITH_MPI).
#ifndef NDSHM_MPI_POOL_HPP
#define NDSHM_MPI_POOL_HPP

#include <mpi.h>

#include <algorithm>
#include <cstddef>
#include <mutex>
#include <string_view>
#include <vector>

#include "detail/mpi_pool_driver.hpp"
#include "detail/mpi_pool_state.hpp"
#include "detail/mpi_pool_worker.hpp"
#include "detail/pool_impl.hpp"
#include "error.hpp"
#include "mpi.hpp"
#include "pool.hpp"

namespace ndshm::mpi {

/// fork_pool's call set over the ranks of an MPI job; see the file comment for the idiom.
///
/// - **Roles.** The constructor is collective over the communicator. On the driver (rank 0, or the
///   rank passed) it returns at once and the pool takes calls; on every other rank it serves tasks
///   until the driver's pool is destroyed, then returns with driver() false. So every rank constructs
///   the pool, only the driver makes calls (inside `if (pool.driver())`), and collective MPI calls of
///   the program go outside that block. Worker i is the i-th rank other than the driver; size() is the
///   number of workers, and a job of one rank runs every task in the driver, as fork_pool(0) does.
/// - **Tasks** are plain functions, as for fork_pool. Code addresses differ between ranks (separately
///   started processes, ASLR), so each function travels as its module and offset and is found again in
///   the worker: every rank must run the same executable (checked when the pool is made).
/// - **Arrays.** A worker on the driver's node attaches a shared_ndarray argument by name (zero copy,
///   as fork_pool's workers). A worker on another node gets a node-local segment of the array's shape
///   holding the part the task works on (a chunk task's rows, a map piece's elements; the whole array
///   for a plain argument or a Fortran-order chunk); the rest of that segment is unspecified, so a
///   chunk task must not read rows outside its chunk. What the task writes goes back into the
///   driver's array when the task ends: all of a writable chunk (take chunk<const T> for what you only
///   read), and of other writable arrays the elements whose bytes changed. An array a remote task
///   returns comes back by value into a new array the driver owns.
/// - **Errors.** A task's exception is thrown on the driver with the same ndshm type and the worker's
///   message, naming the rank, its worker index, node and pid, after the tasks already started have
///   finished. **A rank that dies** (signal, exit) is not replaced: MPI ends the whole job (mpiexec
///   aborts every rank), unlike fork_pool, which forks a new worker.
/// - Calls are serialised and must come from the driver; nothing else may use the pool's ranks for MPI
///   while the driver's pool lives (the workers are inside the constructor).
class pool : public ::ndshm::detail::pool_calls<pool> {
public:
    /// Collective over `comm`: see the class comment. NDSHM_MPI_EMULATED_NODES (or `topo`'s options)
    /// splits a machine into nodes, so that workers on other "nodes" get their arrays by MPI.
    /// @throws error if the ranks disagree about the driver or run different executables, or an MPI
    ///   call fails (on a worker, while serving: then the job should end)
    explicit pool(MPI_Comm comm = MPI_COMM_WORLD, int driver_rank = 0) : pool(topology(comm), driver_rank) {}

    /// Collective over `topo`'s communicator (the pool uses a duplicate of it).
    explicit pool(const topology& topo, int driver_rank = 0) : m_topo(topo)
    {
        detail::open_pool(m_state, m_topo.m_state, driver_rank);
        if (!driver()) {
            detail::serve(m_state);
        }
    }

    pool(const pool&) = delete;
    pool& operator=(const pool&) = delete;

    /// On the driver: tells every worker to stop (their constructors return). Nothing on a worker.
    ~pool() { detail::close_pool(m_state); }

    /// True on the rank that makes the calls; false on the workers (whose constructor has returned
    /// because the driver's pool is gone).
    bool driver() const noexcept { return m_state.is_driver(); }
    /// The driver's rank.
    int driver_rank() const noexcept { return m_state.driver; }
    /// Number of workers: the ranks other than the driver.
    std::size_t size() const noexcept { return m_state.ranks.size(); }
    /// Number of workers that calls spread over: size(), or 1 when the driver is the only rank.
    std::size_t concurrency() const noexcept { return std::max<std::size_t>(1, m_state.ranks.size()); }
    /// The rank of each worker, worker i first.
    const std::vector<int>& ranks() const noexcept { return m_state.ranks; }
    /// The process id of each worker.
    std::vector<long> pids() const
    {
        std::vector<long> p;
        for (const int r : m_state.ranks) {
            p.push_back(m_state.pids[static_cast<std::size_t>(r)]);
        }
        return p;
    }
    /// True if worker `w` runs on the driver's node (it attaches the driver's arrays by name).
    bool shares_memory(std::size_t w) const { return m_state.shares_memory(w); }
    /// The topology (nodes) the pool was made with.
    const topology& topo() const noexcept { return m_topo; }

private:
    friend class ::ndshm::detail::pool_calls<pool>;
    /// Tasks list the arrays they name: workers on other nodes get them by MPI.
    static constexpr bool records_arrays = true;

    void execute(const char* op, std::vector<detail::core::task>& tasks, const result_fn& on_result)
    {
        if (!driver()) {
            detail::core::raise<error>(op, "", "only the driver rank makes calls on an mpi::pool",
                                       "make calls inside `if (pool.driver()) { ... }`",
                                       make_error_code(errc::invalid_argument));
        }
        std::lock_guard<std::mutex> call(m_state.call);
        if (m_state.ranks.empty()) {
            detail::core::run_tasks_in_process(op, tasks, on_result);
        } else {
            detail::run_on_workers(m_state, op, tasks, on_result);
        }
    }

    topology m_topo;
    detail::pool_state m_state;
};

} // namespace ndshm::mpi

#endif // NDSHM_MPI_POOL_HPP
