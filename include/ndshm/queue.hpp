/// @file queue.hpp
/// `ndshm::array_queue`: a named, bounded interprocess queue of shared arrays and composite objects.
/// Only the segment name travels; ownership moves from the process that pushes to the one that pops.
/// Segments made with `make` (or `ndshm::share(obj, queue)`) come back to the queue when their
/// consumer lets them go, and the producer's next `make` reuses them with the mapping it already has:
/// a steady stream then maps nothing, faults nothing in and makes no system call per item.
#ifndef NDSHM_QUEUE_HPP
#define NDSHM_QUEUE_HPP

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "detail/config.hpp"
#include "detail/object_handle.hpp"
#include "detail/queue_format.hpp"
#include "detail/queue_impl.hpp"
#include "detail/sync.hpp"
#include "dtype.hpp"
#include "error.hpp"
#include "options.hpp"
#include "shared_ndarray.hpp"

namespace ndshm {

class array_queue;

namespace detail {
struct queue_access;
} // namespace detail

/// A named, bounded queue of shared arrays (and composite objects) between processes.
///
/// `push` sends an array's name, never its bytes, and hands ownership over: the pushing process stops
/// owning the name (none of its handles unlinks it any more), and the process that pops it owns it (its
/// last handle unlinks it, and `ndshm gc` sees it as the owner). While queued, an array belongs to the
/// queue's creator. Any number of processes push and pop.
///
/// Recycling: `make<T>(shape)` gives an array in a segment of the queue's pool. When the process that
/// popped it lets it go, the segment returns to the queue (it belongs to the queue's owner while it is
/// free) and the next `make` of the same size, in any process, reuses it; every process keeps its
/// mapping of pooled segments, so a steady stream maps nothing, faults no page in and makes no system
/// call per item. `ndshm::share(obj, queue)` (object.hpp) does the same for composite objects.
///
/// The process that creates the queue owns it: its last handle (or `remove()`) closes the queue and
/// unlinks it together with every array still queued and every free segment of the pool. Other
/// processes `open` it by name and never remove it unless they call `remove()`. Copies of a handle
/// share one mapping.
///
/// `close()` wakes every blocked push and pop: pushes then throw, pops return what is still queued,
/// then empty handles.
///
/// Waiting uses ndshm's own lock (detail/sync.hpp) and futexes, so a process killed at any point (even
/// while holding the queue's lock or waiting on it) never blocks the others, and timed and try_ calls
/// return on time even while a stopped process holds the lock.
///
/// A moved-from or reset handle is empty: name() "", capacity() 0, size() 0, closed() false, and every
/// call that needs a queue throws ndshm::error.
class array_queue {
public:
    /// An empty handle (no queue).
    array_queue() = default;

    /// Creates a queue for up to `capacity` items, exclusively, mode 0600, under a generated
    /// unguessable name (or `opt.name`), owned by this process, whose pool keeps up to capacity + 2
    /// segments for reuse. `opt.directory` (or NDSHM_DIR) selects the backend, which the queued arrays
    /// must share; `opt.populate` and `opt.ready_timeout` apply to the arrays this handle pops.
    /// @throws already_exists, permission_denied, out_of_space, error (capacity 0 or above 2^24)
    static array_queue create(std::size_t capacity, const options& opt = {})
    {
        return create(capacity, detail::queue_default_pool(capacity), opt);
    }

    /// Creates a queue whose pool keeps up to `recycled` segments for reuse (0: make() gives plain new
    /// arrays). Count the items in flight at once: the queue's capacity, one per producer filling one
    /// and one per consumer reading one.
    /// @throws as create(capacity, opt), and error for `recycled` above 65536
    static array_queue create(std::size_t capacity, std::size_t recycled, const options& opt)
    {
        return array_queue(detail::create_queue(capacity, recycled, opt));
    }

    /// Opens the queue `name` that another process (or this one) created. The handle does not own it.
    /// @throws not_found, permission_denied, format_error (not a queue, or corrupt), error
    static array_queue attach(const std::string& name, const options& opt = {})
    {
        return array_queue(detail::open_queue(name, opt));
    }

    /// The queue's name, to pass to other processes; empty for an empty handle.
    const std::string& name() const noexcept
    {
        static const std::string none;
        return m_impl ? m_impl->name() : none;
    }
    /// The most items it holds at once (0 for an empty handle).
    std::size_t capacity() const noexcept { return m_impl ? m_impl->capacity() : 0; }
    /// How many segments its pool keeps for reuse (0 for an empty handle).
    std::size_t recycled() const noexcept { return m_impl ? m_impl->pool_records() : 0; }
    /// Items queued now (a snapshot: other processes may change it at once).
    std::size_t size() const noexcept { return m_impl ? m_impl->size() : 0; }
    /// True after close() or remove() (false for an empty handle).
    bool closed() const noexcept { return m_impl && m_impl->closed(); }
    /// Segments handed out again by make() and share(obj, queue) so far, by every process.
    std::uint64_t reused() const noexcept { return m_impl ? m_impl->reused() : 0; }
    /// True for a handle that holds a queue.
    explicit operator bool() const noexcept { return static_cast<bool>(m_impl); }
    /// True for a handle without a queue (default-constructed, moved from or reset).
    bool empty() const noexcept { return !m_impl; }
    /// Drops this handle, which becomes empty (the owner's last handle removes the queue).
    void reset() noexcept { m_impl.reset(); }

    /// A writable array of `shape` for this queue, owned by this process: in a free segment of the
    /// queue's pool whose size fits (its mapping here kept from an earlier handoff: no system call, no
    /// page fault), else in a new one that joins the pool. Its contents are unspecified (a reused
    /// segment holds an earlier item): write all of it. Push it like any array; the process that pops
    /// it gives the segment back to the queue when its last handle goes.
    /// @throws error if the queue is closed or the handle is empty; out_of_space, as create
    template <class T>
    shared_ndarray<T> make(const shape_type& shape, order layout = order::c)
    {
        return impl("make").template make<T>(shape, layout == order::fortran);
    }

    /// Pushes `a`, waiting while the queue is full. On return `a` is empty: the array now belongs to
    /// the queue, then to whoever pops it. Other handles of this process that share its mapping stay
    /// valid, but no longer own the name, and should not write to it once it may have been popped.
    /// @throws error if the queue is closed, or `a` is empty, not owned by this process (attached,
    /// persisted, or created by another process), or in another backend than the queue; in those
    /// cases `a` is left as it was.
    template <class T>
    void push(shared_ndarray<T>&& a)
    {
        (void)impl("push").push(a, std::chrono::steady_clock::time_point::max(), "push");
    }

    /// Pushes `a`, waiting at most `timeout` for room. Returns false if the queue stayed full; `a` is
    /// then left as it was, still owned by the caller.
    template <class T, class Rep, class Period>
    bool push(shared_ndarray<T>&& a, const std::chrono::duration<Rep, Period>& timeout)
    {
        return impl("push").push(
            a, detail::deadline_in(std::chrono::ceil<std::chrono::steady_clock::duration>(timeout)), "push");
    }

    /// Pushes `a` if there is room now; returns false otherwise (`a` left as it was).
    template <class T>
    bool try_push(shared_ndarray<T>&& a)
    {
        return impl("try_push").push(a, std::chrono::steady_clock::now(), "try_push");
    }

    /// Pushes a composite object (from ndshm::share, or ndshm::share(obj, queue)), as push(array) does.
    void push(shared_object&& o) { (void)impl("push").push(o, std::chrono::steady_clock::time_point::max(), "push"); }
    template <class Rep, class Period>
    bool push(shared_object&& o, const std::chrono::duration<Rep, Period>& timeout)
    {
        return impl("push").push(
            o, detail::deadline_in(std::chrono::ceil<std::chrono::steady_clock::duration>(timeout)), "push");
    }
    bool try_push(shared_object&& o) { return impl("try_push").push(o, std::chrono::steady_clock::now(), "try_push"); }

    /// Pops the oldest array, waiting while the queue is empty. The returned handle owns the array.
    /// Returns an empty handle once the queue is closed and drained.
    /// @throws dtype_mismatch if the oldest array holds another element type, error (errc::wrong_kind)
    /// if it is a composite object (it stays queued in both cases); not_found or format_error if its
    /// segment was removed or damaged meanwhile (that entry is dropped)
    template <class T>
    shared_ndarray<T> pop()
    {
        return impl("pop").template pop<T>(std::chrono::steady_clock::time_point::max(), "pop");
    }

    /// Like pop(), but waits at most `timeout`; returns an empty handle if nothing came.
    template <class T, class Rep, class Period>
    shared_ndarray<T> pop(const std::chrono::duration<Rep, Period>& timeout)
    {
        return impl("pop").template pop<T>(
            detail::deadline_in(std::chrono::ceil<std::chrono::steady_clock::duration>(timeout)), "pop");
    }

    /// Pops the oldest array if there is one now; an empty handle otherwise.
    template <class T>
    shared_ndarray<T> try_pop()
    {
        return impl("try_pop").template pop<T>(std::chrono::steady_clock::now(), "try_pop");
    }

    /// Pops the oldest item, a composite object, waiting while the queue is empty: load it with
    /// ndshm::load<T>(handle). An empty handle once the queue is closed and drained.
    /// @throws error (errc::wrong_kind) if the oldest item is an array (it stays queued); as pop()
    shared_object pop_object()
    {
        return impl("pop_object").pop_object(std::chrono::steady_clock::time_point::max(), "pop_object");
    }
    template <class Rep, class Period>
    shared_object pop_object(const std::chrono::duration<Rep, Period>& timeout)
    {
        return impl("pop_object")
            .pop_object(detail::deadline_in(std::chrono::ceil<std::chrono::steady_clock::duration>(timeout)),
                        "pop_object");
    }
    shared_object try_pop_object()
    {
        return impl("try_pop_object").pop_object(std::chrono::steady_clock::now(), "try_pop_object");
    }

    /// The element type of the oldest queued array, or nothing if the queue is empty or the oldest item
    /// is a composite object (a snapshot).
    std::optional<ndshm::dtype> front_dtype() { return impl("front_dtype").front_dtype(); }
    /// True if the oldest queued item is a composite object (a snapshot).
    bool front_is_object() { return impl("front_is_object").front_is_object(); }

    /// Closes the queue for every process: blocked and later pushes throw, pops drain what is queued
    /// and then return empty handles. Every blocked call wakes. Segments of the pool that consumers
    /// let go from now on are unlinked instead of kept.
    void close() { impl("close").close(); }

    /// Closes the queue, unlinks every array still queued, every free segment of the pool and the
    /// queue's name, now. Processes that have it open see it closed.
    void remove() { impl("remove").remove_now("remove queue", std::chrono::steady_clock::time_point::max()); }

    /// Unlinks the free segments of the pool now, giving their memory back; returns how many. The pool
    /// makes new ones as needed.
    std::size_t trim() { return impl("trim").trim(); }

private:
    friend struct detail::queue_access;
    explicit array_queue(std::shared_ptr<detail::queue_impl> impl) : m_impl(std::move(impl)) {}

    detail::queue_impl& impl(const char* op) const
    {
        if (!m_impl) {
            raise_empty(op);
        }
        return *m_impl;
    }

    /// The error of a call `op` that needs a queue, on an empty handle.
    [[noreturn, gnu::cold]] NDSHM_DECL static void raise_empty(const char* op);

    std::shared_ptr<detail::queue_impl> m_impl;
};

namespace detail {

/// Lets ndshm::share(obj, queue) (object.hpp) reach the queue's pool.
struct queue_access {
    static queue_impl& impl(array_queue& q, const char* op) { return q.impl(op); }
};

} // namespace detail

} // namespace ndshm

#if NDSHM_DEFINITIONS
namespace ndshm {

void array_queue::raise_empty(const char* op)
{
    detail::raise<error>(op, "", "the array_queue handle is empty (default-constructed, moved from or reset)",
                         "create a queue with array_queue::create or attach one with array_queue::attach",
                         make_error_code(errc::invalid_argument));
}

} // namespace ndshm
#endif // NDSHM_DEFINITIONS

#endif
