/// @file pool.hpp
/// `ndshm::fork_pool`: a pool of persistent forked worker processes with broadcast, scatter, gather
/// and map over shared arrays; the C++ counterpart of a multiprocessing parallelizer.
#ifndef NDSHM_POOL_HPP
#define NDSHM_POOL_HPP

#ifdef _WIN32
#error                                                                                                                 \
    "ndshm/pool.hpp: fork_pool forks its workers, and Windows has no fork(). On Windows, share the arrays (shared_ndarray, share()) and hand their names to worker processes you start yourself (CreateProcess, std::system), or move them through an array_queue or a channel: both work across processes on Windows."
#endif

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "detail/config.hpp"
#include "detail/pool_calls.hpp"
#include "detail/pool_core.hpp"
#include "detail/pool_impl.hpp"
#include "error.hpp"
#include "reduce.hpp"
#include "shared_ndarray.hpp"

namespace ndshm {
namespace detail {

/// Throws chunk's error for rows [first, last) that do not lie inside axis 0 (length `n`) of array `name`.
[[noreturn, gnu::cold]] NDSHM_DECL void raise_chunk_range(const std::string& name, std::size_t first, std::size_t last,
                                                          std::size_t n);

} // namespace detail

/// Items [first, last) along axis 0 of a shared array: the part of it one task works on. Indices are
/// relative to the chunk: `c(0, j)` is row `first()` of the array. `array()` is the whole array.
template <class T>
class chunk {
public:
    /// What view() returns: an xt::xview of the whole array's view with a range on axis 0.
    using view_type = decltype(xt::view(std::declval<typename shared_ndarray<T>::view_type>(),
                                        xt::range(std::ptrdiff_t(), std::ptrdiff_t())));

    chunk() = default;
    chunk(const chunk&) = default;
    chunk& operator=(const chunk&) = default;
    /// A moved-from chunk is empty, as its array is: no rows, no shape.
    chunk(chunk&& o) noexcept
        : m_array(std::move(o.m_array)), m_first(std::exchange(o.m_first, 0)), m_last(std::exchange(o.m_last, 0))
    {
    }
    chunk& operator=(chunk&& o) noexcept
    {
        m_array = std::move(o.m_array);
        m_first = std::exchange(o.m_first, 0);
        m_last = std::exchange(o.m_last, 0);
        return *this;
    }
    /// Rows [first, last) of `a`.
    /// @throws error if the range does not lie inside axis 0 of `a`
    chunk(shared_ndarray<T> a, std::size_t first, std::size_t last)
        : m_array(std::move(a)), m_first(first), m_last(last)
    {
        const std::size_t n = m_array.dimension() == 0 ? 0 : m_array.shape()[0];
        if (first > last || last > n) {
            detail::raise_chunk_range(m_array.name(), first, last, n);
        }
    }

    /// The first row, in the whole array's numbering.
    std::size_t first() const noexcept { return m_first; }
    /// One past the last row, in the whole array's numbering.
    std::size_t last() const noexcept { return m_last; }
    /// Number of rows (axis-0 items) in the chunk.
    std::size_t size() const noexcept { return m_last - m_first; }
    bool empty() const noexcept { return m_first == m_last; }
    /// The chunk's shape: the array's, with shape()[0] == size().
    shape_type shape() const
    {
        shape_type s = m_array.shape();
        if (!s.empty()) {
            s[0] = size();
        }
        return s;
    }
    /// The whole array.
    const shared_ndarray<T>& array() const noexcept { return m_array; }

    /// Element (first() + i, rest...) of the array.
    template <class... Idx>
    T& operator()(std::size_t i, Idx... rest)
    {
        return m_array(m_first + i, rest...);
    }
    template <class... Idx>
    const T& operator()(std::size_t i, Idx... rest) const
    {
        return m_array(m_first + i, rest...);
    }

    /// An xtensor view of the chunk's rows (no copy; C or Fortran order alike): `xt::view` of the whole
    /// array's view() with a range on axis 0.
    view_type view() const
    {
        return xt::view(const_cast<shared_ndarray<T>&>(m_array).view(),
                        xt::range(static_cast<std::ptrdiff_t>(m_first), static_cast<std::ptrdiff_t>(m_last)));
    }

private:
    shared_ndarray<T> m_array;
    std::size_t m_first = 0;
    std::size_t m_last = 0;
};

/// Which worker of a fork_pool the calling code runs in: `in_worker` is false outside of tasks.
inline worker_info this_worker() noexcept { return detail::current_worker().info; }

/// A pool of `n` worker processes, forked once when the pool is made and reused for every call.
///
/// Work is a plain function (a function pointer: code addresses are the same in every fork) and
/// arguments that cereal serialises (binary archive); `shared_ndarray` arguments travel as handles
/// (their names), and the worker attaches them (read-only for `shared_ndarray<const T>`). A task may
/// return a value the same way; a returned `shared_ndarray` that the worker created is handed over to
/// the caller, who then owns it.
///
/// - `run(f, args...)`: one task on one worker, returns f's result.
/// - `map(f, items, args...)`: f(item, args...) for each element of a vector, spread over the workers.
/// - `map(f, in, out, args...)`: `out[i] = f(in[i], args...)` for every element (same shape and order).
/// - `map(kernel, in, out, args...)`: `kernel(chunk<const TI>, chunk<TO>, args...)` for axis-0 chunks.
/// - `scatter(f, a, args...)`: worker i calls f(chunk i of a, args...); returns each result.
/// - `gather(f, args...)`: every worker calls f(args...); returns their results in worker order.
/// - `broadcast(f, args...)`: every worker calls f(args...) with the same arguments (to set up state).
///
/// The calls and their full descriptions are in detail::pool_calls (detail/pool_calls.hpp), which
/// ndshm::mpi::pool shares; the worker processes are run by detail::pool_core (detail/pool_core.hpp).
///
/// If a task throws, the call throws in the caller the same ndshm exception type (ndshm::error for
/// other exceptions) with the worker's message, after the tasks already started have finished. If a
/// worker dies (abort, SIGSEGV, kill -9, exit), the call throws ndshm::error naming the worker and the
/// signal, and the pool forks a replacement; state that broadcast gave the dead worker is not restored.
///
/// `fork_pool pool(0)` runs the same API in the calling process, one task after the other.
///
/// Calls are serialised (one at a time, whatever the thread). Create the pool before starting threads:
/// a fork copies only the calling thread. Only the process that created the pool may use it; its
/// destructor stops and reaps every worker.
class fork_pool : public detail::pool_calls<fork_pool> {
public:
    /// Forks `workers` worker processes (none for 0: everything then runs in the calling process).
    /// @throws error if a pipe or a fork fails (the workers already forked are stopped again)
    explicit fork_pool(std::size_t workers) : m_core(workers) {}

    fork_pool(const fork_pool&) = delete;
    fork_pool& operator=(const fork_pool&) = delete;

    /// Stops every worker (an idle one is told to exit, one still busy is killed) and reaps it. In a
    /// forked child of the creating process it does nothing.
    ~fork_pool() = default;

    /// Number of worker processes (0 for a serial pool).
    std::size_t size() const noexcept { return m_core.size(); }
    /// Number of workers that calls spread over: size(), or 1 for a serial pool.
    std::size_t concurrency() const noexcept { return std::max<std::size_t>(1, m_core.size()); }
    /// The current workers' process ids (a replaced worker has a new one). Empty for a serial pool.
    std::vector<long> pids() const { return m_core.pids(); }

private:
    friend class detail::pool_calls<fork_pool>;
    /// Tasks name the caller's segments, which every worker attaches: nothing to record.
    static constexpr bool records_arrays = false;

    /// Runs every task; calls on_result(index, bytes) for each result. Throws the first failure.
    void execute(const char* op, std::vector<detail::task>& tasks, const result_fn& on_result)
    {
        m_core.execute(op, tasks, on_result);
    }

    detail::pool_core m_core;
};

} // namespace ndshm

#if NDSHM_DEFINITIONS
namespace ndshm::detail {

void raise_chunk_range(const std::string& name, std::size_t first, std::size_t last, std::size_t n)
{
    raise<error>("chunk of", name,
                 "rows [" + std::to_string(first) + ", " + std::to_string(last) +
                     ") do not lie inside axis 0 (length " + std::to_string(n) + ")",
                 "pass 0 <= first <= last <= shape()[0]", errno_code(EINVAL));
}

} // namespace ndshm::detail
#endif // NDSHM_DEFINITIONS

#endif
