/// @file detail/pool_worker.hpp
/// What a pool worker process knows about itself: which worker it is (ndshm::worker_info), who its
/// parent is (the receiver of the arrays its tasks return), and the mappings it keeps between tasks.
#ifndef NDSHM_DETAIL_POOL_WORKER_HPP
#define NDSHM_DETAIL_POOL_WORKER_HPP

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "segment_impl.hpp"

namespace ndshm {

/// Which pool worker the calling code runs in (see fork_pool).
struct worker_info {
    bool in_worker = false; ///< true inside a task of a fork_pool or mpi::pool (also for pool(0), in-process)
    std::size_t index = 0;  ///< 0 .. count-1
    std::size_t count = 0;  ///< workers of the pool (1 for pool(0))
};

namespace detail {

/// Who receives the arrays a task returns (the pool's parent; this process for pool(0)), and which
/// worker this is.
struct worker_state {
    worker_info info;
    process_identity parent;
};

inline worker_state& current_worker() noexcept
{
    static worker_state s;
    return s;
}

/// The mappings a forked worker keeps between tasks, so that the arrays of a map, a scatter or a run
/// are attached (mapped, and their pages faulted in) once per worker rather than once per task. An
/// entry is used only for the very segment the parent sent (name, file identity and creation time);
/// the cache holds a few recent segments and is dropped whenever the worker has had no task for
/// worker_cache_idle, so that an idle worker keeps no memory of arrays its parent has let go.
struct worker_mapping_cache {
    struct entry {
        std::string dir;
        std::string name;
        file_id id;
        std::uint64_t created_ns = 0;
        std::shared_ptr<mapping> map;
        std::uint64_t used = 0;
    };
    bool enabled = false; ///< only in forked workers: in the parent (pool(0)) a cached mapping would
                          ///< outlive the caller's handles and hold back their unlink
    std::vector<entry> entries;
    std::uint64_t clock = 0;
    static constexpr std::size_t limit = 16;

    void clear() noexcept { entries.clear(); }
};

inline worker_mapping_cache& worker_mappings() noexcept
{
    static worker_mapping_cache c;
    return c;
}

/// How long a worker keeps its cached mappings without a task.
inline constexpr int worker_cache_idle_ms = 100;

} // namespace detail
} // namespace ndshm

#endif
