/// @file queue.hpp
/// `ndshm::array_queue`: a named, bounded interprocess queue of shared arrays. Only the segment
/// name travels; ownership of the array moves from the process that pushes it to the one that pops it.
#ifndef NDSHM_QUEUE_HPP
#define NDSHM_QUEUE_HPP

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include <sys/mman.h>

#include "detail/array_handoff.hpp"
#include "detail/npy.hpp"
#include "detail/queue_format.hpp"
#include "detail/segment_impl.hpp"
#include "detail/sync.hpp"
#include "detail/trailer.hpp"
#include "dtype.hpp"
#include "error.hpp"
#include "options.hpp"
#include "shared_ndarray.hpp"

namespace ndshm {

namespace detail {

/// The state behind array_queue handles of one process: the mapping of the queue's segment.
class queue_impl {
public:
    queue_impl(std::shared_ptr<mapping> m, queue_control* ctl, std::size_t capacity, const options& opt)
        : m_map(std::move(m)), m_ctl(ctl), m_ring(reinterpret_cast<queue_entry*>(ctl + 1)), m_capacity(capacity)
    {
        // Popped arrays are attached from the queue's own backend, with the caller's options. Their
        // pages are prefaulted (options::populate) after the queue's lock is released, not under it.
        m_attach.directory = m_map->loc().dir;
        m_attach.ready_timeout = opt.ready_timeout;
        m_populate = opt.populate;
    }
    queue_impl(const queue_impl&) = delete;
    queue_impl& operator=(const queue_impl&) = delete;

    /// The owner's last handle removes the queue, and with it every array still queued.
    ~queue_impl()
    {
        try {
            if (m_map->owned()) {
                // A destructor waits a bounded time for a lock that a stopped process may hold.
                remove_now("remove queue", std::chrono::steady_clock::now() + std::chrono::seconds(1));
            }
        } catch (...) {
            // The mapping still unlinks the queue's name; arrays left queued are reclaimed by `ndshm gc`
            // once this process has exited (their trailers name it as their owner).
        }
    }

    const std::string& name() const noexcept { return m_map->name(); }
    std::size_t capacity() const noexcept { return m_capacity; }
    std::size_t size() const noexcept
    {
        const std::uint64_t s = __atomic_load_n(&m_ctl->state, __ATOMIC_ACQUIRE);
        return static_cast<std::size_t>(std::min<std::uint64_t>(queue_count(s), m_capacity));
    }
    bool closed() const noexcept { return __atomic_load_n(&m_ctl->closed, __ATOMIC_ACQUIRE) != 0; }

    /// Holds the queue's lock for a scope, and waits on its futex words. Taking the lock may time out
    /// (a stopped peer holds it): check locked().
    class guard {
    public:
        guard(queue_impl& q, const char* op, std::chrono::steady_clock::time_point deadline)
            : m_q(q), m_op(op), m_lock(q.m_ctl->lock, lock_deadline(deadline), q.lock_ctx(m_op))
        {
            checked();
        }
        guard(const guard&) = delete;
        guard& operator=(const guard&) = delete;
        bool locked() const noexcept { return m_lock.locked(); }
        void unlock() noexcept { m_lock.unlock(); }
        /// Sleeps until `word` changes or `deadline` passes, then takes the lock again (by the deadline,
        /// plus try_lock_grace). Returns false, without the lock, if the deadline had passed or the
        /// lock could not be had in time.
        bool wait(std::uint32_t& word, std::uint32_t& waiters, std::chrono::steady_clock::time_point deadline)
        {
            if (deadline != std::chrono::steady_clock::time_point::max() &&
                std::chrono::steady_clock::now() >= deadline) {
                unlock();
                return false;
            }
            const std::uint32_t seen = __atomic_load_n(&word, __ATOMIC_ACQUIRE);
            __atomic_fetch_add(&waiters, 1u, __ATOMIC_RELAXED);
            unlock();
            futex_wait(&word, seen, deadline);
            std::uint32_t n = __atomic_load_n(&waiters, __ATOMIC_RELAXED);
            while (n != 0 &&
                   !__atomic_compare_exchange_n(&waiters, &n, n - 1, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
            }
            if (!m_lock.relock(lock_deadline(deadline), m_q.lock_ctx(m_op))) {
                return false;
            }
            checked();
            return true;
        }

    private:
        void checked()
        {
            // A process that died holding the lock left no half-done change visible: every change
            // becomes visible through one store of `state`. Still, shared memory is checked on every use.
            if (m_lock.locked()) {
                m_q.check_state(*this, m_op.c_str());
            }
        }

        queue_impl& m_q;
        std::string m_op;
        held_lock m_lock;
    };

    /// Bumps a futex word under the lock; returns whether someone may be waiting on it.
    static bool bump(std::uint32_t& word, const std::uint32_t& waiters) noexcept
    {
        __atomic_fetch_add(&word, 1u, __ATOMIC_RELEASE);
        return __atomic_load_n(&waiters, __ATOMIC_RELAXED) != 0;
    }

    template <class T>
    bool push(shared_ndarray<T>& a, std::chrono::steady_clock::time_point deadline, const char* op)
    {
        static_assert(!std::is_const_v<T>, "push a writable shared_ndarray<T>: the receiver becomes its owner");
        const std::shared_ptr<mapping>& am = array_access::mapping_of(a);
        check_pushable(am, whole_array_segment(a), op);
        guard g(*this, op, deadline);
        if (!g.locked()) {
            return false;
        }
        std::uint64_t s = 0;
        for (;;) {
            if (closed()) {
                raise<error>(op, name(), "the queue is closed", "push before close(); the array stays with the caller",
                             errno_code(EPIPE));
            }
            s = __atomic_load_n(&m_ctl->state, __ATOMIC_ACQUIRE);
            if (queue_count(s) < m_capacity) {
                break;
            }
            if (!g.wait(m_ctl->not_full, m_ctl->push_waiters, deadline)) {
                return false;
            }
        }
        // Nothing below throws: the entry, the new owner and the count change together.
        queue_entry& e = m_ring[(queue_head(s) + queue_count(s)) % m_capacity];
        std::memset(&e, 0, sizeof e);
        std::memcpy(e.name, am->name().data(), am->name().size());
        e.dtype = static_cast<std::uint32_t>(dtype_of<T>);
        e.dev = am->id().dev;
        e.ino = am->id().ino;
        e.created_ns = am->get_trailer()->created_ns;
        // Until someone pops it, the array belongs to the queue's owner: gc keeps it while that process
        // runs and reclaims it with the queue if that process dies.
        set_trailer_owner(*am->get_trailer(), queue_owner());
        am->disown();
        __atomic_store_n(&m_ctl->state, queue_pack(queue_head(s), queue_count(s) + 1), __ATOMIC_RELEASE);
        ++m_ctl->pushed;
        const bool wake = bump(m_ctl->not_empty, m_ctl->pop_waiters);
        g.unlock();
        if (wake) {
            futex_wake_all(&m_ctl->not_empty);
        }
        a.reset();
        return true;
    }

    template <class T>
    shared_ndarray<T> pop(std::chrono::steady_clock::time_point deadline, const char* op)
    {
        static_assert(!std::is_const_v<T>, "pop a writable shared_ndarray<T>; convert it to shared_ndarray<const T> "
                                           "afterwards if you like");
        guard g(*this, op, deadline);
        if (!g.locked()) {
            return {};
        }
        std::uint64_t s = 0;
        for (;;) {
            s = __atomic_load_n(&m_ctl->state, __ATOMIC_ACQUIRE);
            if (queue_count(s) > 0) {
                break;
            }
            if (closed() || !g.wait(m_ctl->not_empty, m_ctl->pop_waiters, deadline)) {
                return {};
            }
        }
        const queue_entry e = m_ring[queue_head(s)];
        std::string array_name;
        ndshm::dtype type{};
        if (!queue_entry_valid(e, array_name, type)) {
            drop_head(g, s);
            raise<format_error>(op, name(),
                                "the entry at the head of the queue is corrupt (no valid segment name "
                                "or dtype); it was dropped",
                                "something other than ndshm wrote into the queue's segment",
                                make_error_code(errc::corrupt_control));
        }
        if (type != dtype_of<T>) {
            raise<dtype_mismatch>(op, name(),
                                  std::string("the next array, '") + array_name + "', holds " + dtype_name(type) +
                                      ", not " + dtype_name(dtype_of<T>) + " as requested; it stays queued",
                                  std::string("pop it with the element type for ") + dtype_name(type) +
                                      " (front_dtype() tells the type of the next array)",
                                  errno_code(EINVAL));
        }
        npy_info info;
        std::shared_ptr<mapping> m;
        try {
            m = attach_array_segment(array_name, m_attach, info);
        } catch (const not_found&) {
            drop_head(g, s); // it cannot come back: drop it so that the queue moves on
            throw;
        } catch (const format_error&) {
            drop_head(g, s);
            throw;
        }
        if (info.type != type || !is_queued(*m, e) || !m->writable()) {
            drop_head(g, s);
            raise<format_error>(op, name(),
                                "the queued segment '" + array_name +
                                    "' is not the ndshm array the queue recorded (another file has its name now, or "
                                    "its dtype or trailer differ); it was dropped from the queue, and the file left "
                                    "to whoever made it",
                                "something replaced the segment while it was queued", errno_code(EILSEQ));
        }
        shared_ndarray<T> a = array_access::make<T>(m, info);
        take_ownership(*m); // the trailer names this process for gc, and the session owns the name
        __atomic_store_n(&m_ctl->state, queue_pack((queue_head(s) + 1) % m_capacity, queue_count(s) - 1),
                         __ATOMIC_RELEASE);
        ++m_ctl->popped;
        const bool wake = bump(m_ctl->not_full, m_ctl->push_waiters);
        g.unlock();
        if (wake) {
            futex_wake_all(&m_ctl->not_full);
        }
        if (m_populate) {
            prefault(*m);
        }
        return a;
    }

    std::optional<ndshm::dtype> front_dtype()
    {
        guard g(*this, "front_dtype of queue", std::chrono::steady_clock::time_point::max());
        const std::uint64_t s = __atomic_load_n(&m_ctl->state, __ATOMIC_ACQUIRE);
        if (queue_count(s) == 0) {
            return std::nullopt;
        }
        std::string array_name;
        ndshm::dtype type{};
        if (!queue_entry_valid(m_ring[queue_head(s)], array_name, type)) {
            return std::nullopt;
        }
        return type;
    }

    void close()
    {
        guard g(*this, "close queue", std::chrono::steady_clock::time_point::max());
        __atomic_store_n(&m_ctl->closed, 1u, __ATOMIC_RELEASE);
        (void)bump(m_ctl->not_empty, m_ctl->pop_waiters);
        (void)bump(m_ctl->not_full, m_ctl->push_waiters);
        g.unlock();
        // Every waiter, whatever it waits for, wakes and sees the flag.
        futex_wake_all(&m_ctl->not_empty);
        futex_wake_all(&m_ctl->not_full);
    }

    /// Closes the queue, unlinks every array still queued, and unlinks the queue's name. Waits for the
    /// queue's lock until `deadline`; without it, only the queue's own name goes.
    void remove_now(const char* op, std::chrono::steady_clock::time_point deadline)
    {
        guard g(*this, op, deadline);
        if (!g.locked()) {
            __atomic_store_n(&m_ctl->closed, 1u, __ATOMIC_RELEASE);
            futex_wake_all(&m_ctl->not_empty);
            futex_wake_all(&m_ctl->not_full);
            m_map->disown();
            (void)unlink_if_same(m_map->loc(), m_map->id());
            raise<error>(op, name(),
                         "the queue's lock stayed taken (a stopped process holds it), so the arrays still queued "
                         "were not removed; the queue's name was",
                         "run `ndshm gc` once the process that holds it has ended", errno_code(ETIMEDOUT));
        }
        __atomic_store_n(&m_ctl->closed, 1u, __ATOMIC_RELEASE);
        const std::uint64_t s = __atomic_load_n(&m_ctl->state, __ATOMIC_ACQUIRE);
        for (std::uint64_t i = 0; i < queue_count(s); ++i) {
            std::string array_name;
            ndshm::dtype type{};
            const queue_entry& e = m_ring[(queue_head(s) + i) % m_capacity];
            if (queue_entry_valid(e, array_name, type)) {
                unlink_queued(array_name, e);
            }
        }
        __atomic_store_n(&m_ctl->state, queue_pack(0, 0), __ATOMIC_RELEASE);
        (void)bump(m_ctl->not_empty, m_ctl->pop_waiters);
        (void)bump(m_ctl->not_full, m_ctl->push_waiters);
        g.unlock();
        futex_wake_all(&m_ctl->not_empty);
        futex_wake_all(&m_ctl->not_full);
        m_map->disown();
        (void)unlink_if_same(m_map->loc(), m_map->id());
    }

private:
    lock_context lock_ctx(const std::string& op) const noexcept { return {op, name(), "the queue's lock"}; }

    void check_state(guard& g, const char* op)
    {
        const std::uint64_t s = __atomic_load_n(&m_ctl->state, __ATOMIC_ACQUIRE);
        if (queue_head(s) >= m_capacity || queue_count(s) > m_capacity) {
            g.unlock();
            raise<format_error>(op, name(),
                                "the queue's segment is corrupt (head " + std::to_string(queue_head(s)) + ", count " +
                                    std::to_string(queue_count(s)) + ", capacity " + std::to_string(m_capacity) + ")",
                                "something other than ndshm wrote into it; remove it and create a new queue",
                                make_error_code(errc::corrupt_control));
        }
    }

    /// Removes the head entry without taking its array (an entry that can never be popped).
    void drop_head(guard& g, std::uint64_t s) noexcept
    {
        __atomic_store_n(&m_ctl->state, queue_pack((queue_head(s) + 1) % m_capacity, queue_count(s) - 1),
                         __ATOMIC_RELEASE);
        const bool wake = bump(m_ctl->not_full, m_ctl->push_waiters);
        g.unlock();
        if (wake) {
            futex_wake_all(&m_ctl->not_full);
        }
    }

    /// True if `m` maps the segment that entry `e` was made for (not another one created later under its
    /// name).
    static bool is_queued(const mapping& m, const queue_entry& e) noexcept
    {
        const trailer* t = m.get_trailer();
        return t != nullptr && m.id() == file_id{e.dev, e.ino} && t->created_ns == e.created_ns;
    }

    /// Unlinks a queued array's name if it still names the array that was queued. Checked on a mapping
    /// of it, which holds the file meanwhile (see unlink_if_same); names that cannot be attached are
    /// gone or are not the array, and are left alone.
    void unlink_queued(const std::string& array_name, const queue_entry& e) const noexcept
    {
        try {
            options o = m_attach;
            o.read_only = true;
            o.ready_timeout = std::chrono::milliseconds(0);
            npy_info info;
            const auto m = attach_array_segment(array_name, o, info);
            if (is_queued(*m, e)) {
                (void)unlink_if_same(m->loc(), m->id());
            }
        } catch (...) {
        }
    }

    /// The process recorded as the queue's owner in its trailer.
    process_identity queue_owner() const noexcept
    {
        process_identity p;
        if (const trailer* t = m_map->get_trailer()) {
            p.pid = __atomic_load_n(&t->creator_pid, __ATOMIC_ACQUIRE);
            p.start = __atomic_load_n(&t->creator_start, __ATOMIC_ACQUIRE);
        }
        return p;
    }

    void check_pushable(const std::shared_ptr<mapping>& am, bool whole, const char* op) const
    {
        if (!am) {
            raise<error>(op, name(), "the shared_ndarray is empty", "push a handle that holds an array",
                         errno_code(EINVAL));
        }
        const auto refuse = [&](const std::string& why, const std::string& fix) {
            raise<error>(std::string(op) + " '" + am->name() + "' to", name(), why, fix, errno_code(EINVAL));
        };
        if (!whole) {
            refuse("the handle is part of a larger segment (a composite object's member or a channel slot), "
                   "not a whole array segment; pushing it would give away the whole segment",
                   "push a copy: shared_ndarray<T>::from_array(a.view())");
        }
        if (!am->owned()) {
            refuse("this process does not own the array (it was attached, persisted, already pushed, or created "
                   "by another process), so it cannot hand ownership over",
                   "push arrays this process created (create, from_array) or popped");
        }
        const trailer* t = am->get_trailer();
        if (t == nullptr || !am->writable()) {
            refuse("the array has no writable ndshm trailer to record its new owner in", "push arrays made by ndshm");
        }
        if (load_acquire(t->state) != state_ready) {
            refuse("the array is not published yet", "push it after create() or from_array() returned");
        }
        if (am->loc().dir != m_map->loc().dir) {
            refuse("the array lives in another backend ('" + am->loc().path() + "') than the queue ('" +
                       m_map->loc().path() + "')",
                   "create the array with the same options::directory (or NDSHM_DIR) as the queue");
        }
    }

    /// Maps every page of a popped array now (as MAP_POPULATE would), so that reading it takes no page
    /// faults. Read-populating costs what MAP_POPULATE does; write-populating costs over twice as much
    /// (no fault-around), and tmpfs pages need no write fault later anyway. Best effort: kernels before
    /// 5.14 lack MADV_POPULATE_READ, and the pages then come on first touch.
    static void prefault(const mapping& m) noexcept
    {
#ifndef MADV_POPULATE_READ
        constexpr int MADV_POPULATE_READ = 22; // Linux 5.14
#endif
        (void)sys().madvise(m.base(), m.size(), MADV_POPULATE_READ);
    }

    std::shared_ptr<mapping> m_map;
    queue_control* m_ctl;
    queue_entry* m_ring;
    std::size_t m_capacity;
    options m_attach;
    bool m_populate = false;
};

} // namespace detail

/// A named, bounded queue of shared arrays between processes.
///
/// `push` sends an array's name, never its bytes, and hands ownership over: the pushing process stops
/// owning the name (none of its handles unlinks it any more), and the process that pops it owns it (its
/// last handle unlinks it, and `ndshm gc` sees it as the owner). While queued, an array belongs to the
/// queue's creator. Any number of processes push and pop.
///
/// The process that creates the queue owns it: its last handle (or `remove()`) closes the queue and
/// unlinks it together with every array still queued. Other processes `open` it by name and never
/// remove it unless they call `remove()`. Copies of a handle share one mapping.
///
/// `close()` wakes every blocked push and pop: pushes then throw, pops return what is still queued,
/// then empty handles.
///
/// Waiting uses ndshm's own lock (detail/sync.hpp) and futexes, so a process killed at any point (even
/// while holding the queue's lock or waiting on it) never blocks the others, and timed and try_ calls
/// return on time even while a stopped process holds the lock.
class array_queue {
public:
    /// An empty handle (no queue).
    array_queue() = default;

    /// Creates a queue for up to `capacity` arrays, exclusively, mode 0600, under a generated
    /// unguessable name (or `opt.name`), owned by this process. `opt.directory` (or NDSHM_DIR) selects
    /// the backend, which the queued arrays must share; `opt.populate` and `opt.ready_timeout` apply
    /// to the arrays this handle pops.
    /// @throws already_exists, permission_denied, out_of_space, error (capacity 0 or above 2^24)
    static array_queue create(std::size_t capacity, const options& opt = {})
    {
        const std::string op = "create queue";
        if (capacity == 0 || capacity > detail::queue_max_capacity) {
            detail::raise<error>(op, opt.name, "capacity " + std::to_string(capacity) + " is out of range",
                                 "pass a capacity from 1 to " + std::to_string(detail::queue_max_capacity),
                                 detail::errno_code(EINVAL));
        }
        if (opt.read_only) {
            detail::raise<error>(op, opt.name, "options::read_only is set, but a queue is written by every user",
                                 "leave options::read_only false", detail::errno_code(EINVAL));
        }
        detail::npy_info info;
        auto m = detail::create_array_segment(opt, dtype::uint8, {detail::queue_data_bytes(capacity)}, false, op, info);
        m->get_trailer()->kind = detail::kind_queue;
        auto* ctl = ::new (m->base() + info.data_offset) detail::queue_control{};
        std::memcpy(ctl->magic, detail::queue_magic, sizeof ctl->magic);
        ctl->version = detail::queue_version;
        ctl->entry_size = sizeof(detail::queue_entry);
        ctl->capacity = capacity;
        detail::init_lock(&ctl->lock);
        m->publish();
        return array_queue(std::make_shared<detail::queue_impl>(std::move(m), ctl, capacity, opt));
    }

    /// Opens the queue `name` that another process (or this one) created. The handle does not own it.
    /// @throws not_found, permission_denied, format_error (not a queue, or corrupt), error
    static array_queue open(const std::string& name, const options& opt = {})
    {
        const std::string op = "open queue";
        if (opt.read_only) {
            detail::raise<error>(op, name, "options::read_only is set, but using a queue writes to it",
                                 "leave options::read_only false", detail::errno_code(EINVAL));
        }
        detail::npy_info info;
        std::uint32_t kind = 0;
        auto m = detail::open_npy_segment(opt, name, op, info, kind);
        if (kind != detail::kind_queue) {
            detail::raise<format_error>(op, name,
                                        kind == 0 ? "the segment is not an ndshm segment (no trailer)"
                                                  : "the segment holds an ndshm " +
                                                        std::string(kind == detail::kind_array    ? "array"
                                                                    : kind == detail::kind_object ? "object"
                                                                                                  : "segment") +
                                                        ", not a queue",
                                        "check the name; array_queue::create makes queues", detail::errno_code(EINVAL));
        }
        const auto corrupt = [&](const std::string& why) {
            detail::raise<format_error>(op, name, "corrupt queue: " + why, "remove it and create a new queue",
                                        make_error_code(errc::corrupt_control));
        };
        if (info.type != dtype::uint8 || info.shape.size() != 1 || info.nbytes < sizeof(detail::queue_control)) {
            corrupt("its header does not describe a queue");
        }
        auto* ctl = reinterpret_cast<detail::queue_control*>(m->base() + info.data_offset);
        if (std::memcmp(ctl->magic, detail::queue_magic, sizeof ctl->magic) != 0 ||
            ctl->version != detail::queue_version) {
            corrupt("unknown queue format (magic or version)");
        }
        const std::uint64_t capacity = ctl->capacity;
        if (ctl->entry_size != sizeof(detail::queue_entry) || capacity == 0 || capacity > detail::queue_max_capacity ||
            detail::queue_data_bytes(static_cast<std::size_t>(capacity)) > info.nbytes) {
            corrupt("its capacity (" + std::to_string(capacity) + ") does not fit its " + std::to_string(info.nbytes) +
                    " bytes");
        }
        return array_queue(
            std::make_shared<detail::queue_impl>(std::move(m), ctl, static_cast<std::size_t>(capacity), opt));
    }

    /// The queue's name, to pass to other processes; empty for an empty handle.
    const std::string& name() const noexcept
    {
        static const std::string none;
        return m_impl ? m_impl->name() : none;
    }
    /// The most arrays it holds at once.
    std::size_t capacity() const noexcept { return m_impl ? m_impl->capacity() : 0; }
    /// Arrays queued now (a snapshot: other processes may change it at once).
    std::size_t size() const noexcept { return m_impl ? m_impl->size() : 0; }
    /// True after close() or remove().
    bool closed() const noexcept { return m_impl && m_impl->closed(); }
    /// True for a handle that holds a queue.
    explicit operator bool() const noexcept { return static_cast<bool>(m_impl); }

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

    /// Pops the oldest array, waiting while the queue is empty. The returned handle owns the array.
    /// Returns an empty handle once the queue is closed and drained.
    /// @throws dtype_mismatch if the oldest array holds another element type (it stays queued);
    /// not_found or format_error if its segment was removed or damaged meanwhile (that entry is dropped)
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

    /// The element type of the oldest queued array, or nothing if the queue is empty (a snapshot).
    std::optional<ndshm::dtype> front_dtype() { return impl("front_dtype").front_dtype(); }

    /// Closes the queue for every process: blocked and later pushes throw, pops drain what is queued
    /// and then return empty handles. Every blocked call wakes.
    void close() { impl("close").close(); }

    /// Closes the queue, unlinks every array still queued and unlinks the queue's name, now. Processes
    /// that have it open see it closed.
    void remove() { impl("remove").remove_now("remove queue", std::chrono::steady_clock::time_point::max()); }

private:
    explicit array_queue(std::shared_ptr<detail::queue_impl> impl) : m_impl(std::move(impl)) {}

    detail::queue_impl& impl(const char* op) const
    {
        if (!m_impl) {
            detail::raise<error>(op, "", "the array_queue handle is empty",
                                 "create a queue with array_queue::create or open one with array_queue::open",
                                 detail::errno_code(EINVAL));
        }
        return *m_impl;
    }

    std::shared_ptr<detail::queue_impl> m_impl;
};

} // namespace ndshm

#endif
