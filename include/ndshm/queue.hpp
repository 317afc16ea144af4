/// @file queue.hpp
/// `ndshm::array_queue`: a named, bounded interprocess queue of shared arrays and composite objects.
/// Only the segment name travels; ownership moves from the process that pushes to the one that pops.
/// Segments made with `make` (or `ndshm::share(obj, queue)`) come back to the queue when their
/// consumer lets them go, and the producer's next `make` reuses them with the mapping it already has:
/// a steady stream then maps nothing, faults nothing in and makes no system call per item.
#ifndef NDSHM_QUEUE_HPP
#define NDSHM_QUEUE_HPP

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#ifndef _WIN32
#include <sys/mman.h>
#endif

#include "detail/array_handoff.hpp"
#include "detail/npy.hpp"
#include "detail/object_handle.hpp"
#include "detail/queue_format.hpp"
#include "detail/queue_pool.hpp"
#include "detail/segment_impl.hpp"
#include "detail/sync.hpp"
#include "detail/trailer.hpp"
#include "dtype.hpp"
#include "error.hpp"
#include "options.hpp"
#include "shared_ndarray.hpp"

namespace ndshm {

class array_queue;

namespace detail {

struct queue_access;

/// A segment for a producer: a pooled one to reuse, a new pooled one, or a plain new one.
struct queue_acquired {
    std::shared_ptr<mapping> handle; ///< what handles hold: lease-backed for a pooled segment
    mapping* map = nullptr;
    bool fresh = true; ///< a new segment: no header or trailer yet
    std::shared_ptr<pool_lease> lease;
    npy_info previous; ///< the header a reused segment has now
    bool previous_known = false;
};

/// The state behind array_queue handles of one process: the mapping of the queue's segment, and the
/// queue's recycling pool as this process sees it.
class queue_impl {
public:
    queue_impl(std::shared_ptr<mapping> m, queue_control* ctl, std::size_t capacity, std::size_t pool,
               const options& opt)
        : m_map(std::move(m)), m_ctl(ctl), m_ring(reinterpret_cast<queue_entry*>(ctl + 1)), m_capacity(capacity)
    {
        // Popped arrays are attached from the queue's own backend, with the caller's options. Their
        // pages are prefaulted (options::populate) after the queue's lock is released, not under it.
        m_attach.directory = m_map->loc().dir;
        m_attach.ready_timeout = opt.ready_timeout;
        m_populate = opt.populate;
        // Pooled segments are made in the queue's backend with the queue's own permissions.
        m_make.directory = m_map->loc().dir;
        m_make.mode = queue_mode();
        auto* records = reinterpret_cast<queue_pool_record*>(m_ring + capacity);
        m_pool = std::make_shared<queue_pool>(m_map, ctl, records, pool);
    }
    queue_impl(const queue_impl&) = delete;
    queue_impl& operator=(const queue_impl&) = delete;

    /// The owner's last handle removes the queue, and with it every array still queued or free in the pool.
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
        m_pool->detach();
    }

    const std::string& name() const noexcept { return m_map->name(); }
    std::size_t capacity() const noexcept { return m_capacity; }
    std::size_t pool_records() const noexcept { return m_pool->count(); }
    std::size_t size() const noexcept
    {
        const std::uint64_t s = __atomic_load_n(&m_ctl->state, __ATOMIC_ACQUIRE);
        return static_cast<std::size_t>(std::min<std::uint64_t>(queue_count(s), m_capacity));
    }
    bool closed() const noexcept { return __atomic_load_n(&m_ctl->closed, __ATOMIC_ACQUIRE) != 0; }
    std::uint64_t reused() const noexcept { return __atomic_load_n(&m_ctl->reused, __ATOMIC_ACQUIRE); }

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
            unlock();
            // A short spin first (adaptive, see spin_policy): a push or pop that comes within it costs
            // neither side a futex call. Only a process that sleeps counts as a waiter, so that the
            // other side wakes nobody for nothing.
            const auto started = std::chrono::steady_clock::now();
            if (!m_q.m_spin.spin([&] { return __atomic_load_n(&word, __ATOMIC_ACQUIRE) != seen; }, deadline)) {
                __atomic_fetch_add(&waiters, 1u, __ATOMIC_SEQ_CST);
                futex_wait(&word, seen, deadline);
                std::uint32_t n = __atomic_load_n(&waiters, __ATOMIC_RELAXED);
                while (n != 0 &&
                       !__atomic_compare_exchange_n(&waiters, &n, n - 1, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
                }
                m_q.m_spin.slept(std::chrono::steady_clock::now() - started);
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
        // Sequentially consistent with a waiter's count and sleep (see guard::wait): either the waiter
        // sees the new word and does not sleep, or this sees its count and wakes it.
        __atomic_fetch_add(&word, 1u, __ATOMIC_SEQ_CST);
        return __atomic_load_n(&waiters, __ATOMIC_SEQ_CST) != 0;
    }

    template <class T>
    bool push(shared_ndarray<T>& a, std::chrono::steady_clock::time_point deadline, const char* op)
    {
        static_assert(!std::is_const_v<T>, "push a writable shared_ndarray<T>: the receiver becomes its owner");
        const std::shared_ptr<mapping>& am = array_access::mapping_of(a);
        check_pushable(am, whole_array_segment(a), kind_array, op);
        if (!push_segment(am, static_cast<std::uint32_t>(dtype_of<T>), 0, deadline, op)) {
            return false;
        }
        a.reset();
        return true;
    }

    bool push(shared_object& o, std::chrono::steady_clock::time_point deadline, const char* op)
    {
        const std::shared_ptr<mapping>& am = object_access::mapping_of(o);
        check_pushable(am, true, kind_object, op);
        if (!push_segment(am, static_cast<std::uint32_t>(dtype::uint8), entry_object, deadline, op)) {
            return false;
        }
        o.reset();
        return true;
    }

    template <class T>
    shared_ndarray<T> pop(std::chrono::steady_clock::time_point deadline, const char* op)
    {
        static_assert(!std::is_const_v<T>, "pop a writable shared_ndarray<T>; convert it to shared_ndarray<const T> "
                                           "afterwards if you like");
        npy_info info;
        const std::shared_ptr<mapping> m = pop_segment(deadline, op, false, dtype_of<T>, info);
        if (!m) {
            return {};
        }
        return array_access::make<T>(m, info);
    }

    shared_object pop_object(std::chrono::steady_clock::time_point deadline, const char* op)
    {
        npy_info info;
        const std::shared_ptr<mapping> m = pop_segment(deadline, op, true, dtype::uint8, info);
        if (!m) {
            return {};
        }
        // The array count, for shared_object::array_count(); load<T> checks the whole object.
        std::uint64_t arrays = 0;
        if (info.nbytes >= 32) {
            std::memcpy(&arrays, m->base() + info.data_offset + 24, sizeof arrays);
        }
        return object_access::make(m, static_cast<std::size_t>(arrays));
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
        const queue_entry& e = m_ring[queue_head(s)];
        if (!queue_entry_valid(e, array_name, type) || (e.flags & entry_object) != 0) {
            return std::nullopt;
        }
        return type;
    }

    bool front_is_object()
    {
        guard g(*this, "front_is_object of queue", std::chrono::steady_clock::time_point::max());
        const std::uint64_t s = __atomic_load_n(&m_ctl->state, __ATOMIC_ACQUIRE);
        if (queue_count(s) == 0) {
            return false;
        }
        std::string array_name;
        ndshm::dtype type{};
        const queue_entry& e = m_ring[queue_head(s)];
        return queue_entry_valid(e, array_name, type) && (e.flags & entry_object) != 0;
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

    /// Closes the queue, unlinks every array still queued and every free segment of the pool, and
    /// unlinks the queue's name. Waits for the queue's lock until `deadline`; without it, only the
    /// queue's own name goes. Segments that processes hold stay theirs: they unlink them when done.
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
                unlink_queued(array_name, file_id{e.dev, e.ino}, e.created_ns);
            }
        }
        __atomic_store_n(&m_ctl->state, queue_pack(0, 0), __ATOMIC_RELEASE);
        const std::vector<pooled_segment> free_ones = take_records(true);
        (void)bump(m_ctl->not_empty, m_ctl->pop_waiters);
        (void)bump(m_ctl->not_full, m_ctl->push_waiters);
        g.unlock();
        futex_wake_all(&m_ctl->not_empty);
        futex_wake_all(&m_ctl->not_full);
        for (const auto& f : free_ones) {
            unlink_queued(f.name, f.id, f.created_ns);
        }
        prune_cache();
        m_map->disown();
        (void)unlink_if_same(m_map->loc(), m_map->id());
    }

    /// Unlinks every free segment of the pool now (they come back as new ones when needed).
    std::size_t trim()
    {
        guard g(*this, "trim queue", std::chrono::steady_clock::time_point::max());
        const std::vector<pooled_segment> free_ones = take_records(false);
        g.unlock();
        for (const auto& f : free_ones) {
            unlink_queued(f.name, f.id, f.created_ns);
        }
        prune_cache();
        return free_ones.size();
    }

    /// A writable array of `dtype_of<T>` and `shape` in a segment of the pool: a free one that fits, with
    /// its mapping in this process kept from an earlier handoff, else a new one.
    template <class T>
    shared_ndarray<T> make(const shape_type& shape, bool fortran)
    {
        static_assert(!std::is_const_v<T>, "make a writable shared_ndarray<T>");
        const std::string op = "make";
        npy_info info;
        info.type = dtype_of<T>;
        info.shape = shape;
        info.fortran_order = fortran;
        info.data_offset = 4096;
        const std::size_t limit = static_cast<std::size_t>(std::numeric_limits<off_t>::max()) / 2;
        if (shape.size() > npy_max_ndim) {
            raise<error>(op, name(), std::to_string(shape.size()) + " dimensions requested", "use at most 64",
                         make_error_code(errc::invalid_argument));
        }
        if (!checked_nbytes(shape, sizeof(T), info.size, info.nbytes) || info.nbytes > limit) {
            raise<out_of_space>(op, name(), "the requested shape's size overflows", "check the shape",
                                errno_code(EOVERFLOW));
        }
        const std::size_t toff = trailer_offset(info.data_offset + info.nbytes);
        queue_acquired a = acquire(toff + sizeof(trailer), op);
        bool rewritten = true;
        if (a.fresh) {
            write_header(*a.map, info, op);
            write_trailer(*a.map, toff, kind_array, info.data_offset, info.nbytes);
        } else {
            rewritten = !a.previous_known || a.previous.type != info.type || a.previous.shape != info.shape ||
                        a.previous.fortran_order != info.fortran_order || a.previous.data_offset != info.data_offset;
            if (rewritten) {
                write_header(*a.map, info, op);
            }
            place_pooled_trailer(*a.map, kind_array, info.data_offset, info.nbytes);
        }
        finish(a, info, rewritten);
        a.map->publish();
        return array_access::make<T>(a.handle, info);
    }

    /// A segment of at least `bytes` bytes for a producer (see make): pooled when the pool has a free
    /// segment that fits, or a record for a new one; a plain new segment otherwise. This process owns it.
    queue_acquired acquire(std::size_t bytes, const std::string& op)
    {
        const auto closed_error = [&] {
            raise<error>(op, name(), "the queue is closed", "make arrays before close()", errno_code(EPIPE));
        };
        if (closed()) {
            closed_error();
        }
        const std::size_t n = m_pool->count();
        std::uint32_t idx = static_cast<std::uint32_t>(n);
        bool reuse = false;
        std::uint32_t generation = 0;
        std::string seg_name;
        file_id id;
        std::uint64_t created = 0;
        std::vector<pooled_segment> evicted;
        {
            guard g(*this, op.c_str(), std::chrono::steady_clock::time_point::max());
            if (closed()) {
                g.unlock();
                closed_error();
            }
            const process_identity me = this_process();
            // The smallest free segment that fits.
            std::uint64_t best = 0;
            for (std::size_t i = 0; i < n; ++i) {
                const queue_pool_record& r = m_pool->record(i);
                if (__atomic_load_n(&r.state, __ATOMIC_ACQUIRE) != pool_free) {
                    continue;
                }
                const std::uint64_t b = r.bytes;
                if (pool_fits(b, bytes) && (idx == n || b < best)) {
                    idx = static_cast<std::uint32_t>(i);
                    best = b;
                }
            }
            if (idx < n) {
                queue_pool_record& r = m_pool->record(idx);
                if (valid_segment_name(r.name, sizeof r.name, seg_name) && r.ino != 0) {
                    reuse = true;
                    generation = r.generation;
                    id = file_id{r.dev, r.ino};
                    created = r.created_ns;
                    hold(r, me);
                    __atomic_fetch_add(&m_ctl->reused, std::uint64_t(1), __ATOMIC_RELAXED);
                } else {
                    empty_record(r); // nothing usable recorded: forget it
                    idx = static_cast<std::uint32_t>(n);
                }
            }
            if (!reuse) {
                idx = free_record(evicted);
                if (idx < n) {
                    queue_pool_record& r = m_pool->record(idx);
                    generation = r.generation;
                    r.bytes = 0;
                    r.layout = 0;
                    std::memset(r.name, 0, sizeof r.name);
                    hold(r, me);
                }
            }
        }
        for (const auto& e : evicted) {
            unlink_queued(e.name, e.id, e.created_ns);
        }
        if (reuse) {
            if (auto a = reuse_segment(idx, generation, seg_name, id, created, op)) {
                return std::move(*a);
            }
            // It could not be used (gone, or not what the record says): the record is emptied, and a
            // plain new segment serves this time.
            idx = static_cast<std::uint32_t>(n);
        }
        queue_acquired a;
        std::shared_ptr<mapping> m;
        try {
            m = create_segment(m_make, bytes, op);
        } catch (...) {
            if (idx < n) {
                let_go(idx, generation);
            }
            throw;
        }
        a.map = m.get();
        a.fresh = true;
        if (idx < n) {
            std::vector<std::shared_ptr<mapping>> drop;
            std::lock_guard<std::mutex> g(m_pool->mutex());
            m_pool->prune(drop);
            queue_pool::cached& c = m_pool->cache()[idx];
            c = queue_pool::cached{};
            c.generation = generation;
            c.map = m;
            a.lease = m_pool->lease(m_pool, idx, c);
            a.handle = lease_handle(a.lease);
            __atomic_fetch_add(&m_ctl->pool_created, std::uint64_t(1), __ATOMIC_RELAXED);
        } else {
            a.handle = std::move(m);
        }
        return a;
    }

    /// After a producer wrote the header and the trailer of an acquired segment: the pool record gets
    /// the identity of a new segment, and a new layout number if the header changed (so that consumers
    /// with a mapping of it read it again).
    void finish(queue_acquired& a, const npy_info& info, bool rewritten) noexcept
    {
        if (!a.lease) {
            return;
        }
        queue_pool_record& r = m_pool->record(a.lease->index);
        const trailer* t = a.map->get_trailer();
        if (a.fresh) {
            std::memset(r.name, 0, sizeof r.name);
            std::memcpy(r.name, a.map->name().data(), std::min(a.map->name().size(), sizeof r.name - 1));
            r.dev = a.map->id().dev;
            r.ino = a.map->id().ino;
            r.created_ns = t != nullptr ? t->created_ns : 0;
            r.bytes = a.map->size();
        }
        if (rewritten) {
            ++r.layout;
        }
        try {
            std::lock_guard<std::mutex> g(m_pool->mutex());
            auto it = m_pool->cache().find(a.lease->index);
            if (it != m_pool->cache().end()) {
                it->second.info = info;
                it->second.info_known = true;
                it->second.layout = r.layout;
            }
        } catch (...) {
            // The cache is an optimisation: a consumer-side reparse costs microseconds.
        }
    }

private:
    /// What a record named, for unlinking after the queue's lock is released.
    struct pooled_segment {
        std::string name;
        file_id id;
        std::uint64_t created_ns = 0;
    };

    lock_context lock_ctx(const std::string& op) const noexcept { return {op, name(), "the queue's lock"}; }

    /// The permission bits of the queue's own segment, for the segments of its pool.
    std::uint32_t queue_mode() const noexcept
    {
        struct stat st {};
        const std::string path = file_path(m_map->loc());
        if (retry_eintr([&] { return sys().fstatat(AT_FDCWD, path.c_str(), &st, AT_SYMLINK_NOFOLLOW); }) != 0) {
            return 0600;
        }
        return static_cast<std::uint32_t>(st.st_mode) & 0777u;
    }

    void write_header(mapping& m, const npy_info& info, const std::string& op) const
    {
        if (!write_npy_header(m.base(), info.data_offset, info.type, info.shape, info.fortran_order)) {
            raise<error>(op, name(), "the .npy header does not fit before the data", "use fewer dimensions",
                         make_error_code(errc::invalid_argument));
        }
    }

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

    // ---- pool records (see queue_format.hpp) ---------------------------------------------------------

    /// Makes this process the holder of record `r`: the holder first, then the state.
    static void hold(queue_pool_record& r, const process_identity& me) noexcept
    {
        __atomic_store_n(&r.pid, me.pid, __ATOMIC_RELAXED);
        __atomic_store_n(&r.start, me.start, __ATOMIC_RELAXED);
        __atomic_store_n(&r.state, std::uint32_t(pool_held), __ATOMIC_RELEASE);
    }

    /// Forgets the segment of record `r` (under the lock, or by its holder).
    static void empty_record(queue_pool_record& r) noexcept
    {
        __atomic_store_n(&r.generation, __atomic_load_n(&r.generation, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
        __atomic_store_n(&r.pid, std::uint64_t(0), __ATOMIC_RELAXED);
        __atomic_store_n(&r.state, std::uint32_t(pool_empty), __ATOMIC_RELEASE);
    }

    /// Lets go of record `idx` of generation `generation`, which this process holds: the segment is not
    /// (or no longer) part of the pool.
    void let_go(std::uint32_t idx, std::uint32_t generation) noexcept
    {
        queue_pool_record& r = m_pool->record(idx);
        if (__atomic_load_n(&r.state, __ATOMIC_ACQUIRE) == pool_held &&
            __atomic_load_n(&r.generation, __ATOMIC_RELAXED) == generation &&
            __atomic_load_n(&r.pid, __ATOMIC_RELAXED) == this_process().pid) {
            empty_record(r);
        }
    }

    /// What record `r` names, if anything usable.
    static bool named(const queue_pool_record& r, pooled_segment& out)
    {
        if (r.ino == 0 || !valid_segment_name(r.name, sizeof r.name, out.name)) {
            return false;
        }
        out.id = file_id{r.dev, r.ino};
        out.created_ns = r.created_ns;
        return true;
    }

    /// Under the lock: a record for a new segment. An empty one; else a free one, whose segment is
    /// evicted (to `evicted`, unlinked after the lock); else one whose holder died (positive evidence,
    /// looked for at most every 50 ms). The record count if there is none.
    std::uint32_t free_record(std::vector<pooled_segment>& evicted)
    {
        const std::size_t n = m_pool->count();
        for (std::size_t i = 0; i < n; ++i) {
            if (__atomic_load_n(&m_pool->record(i).state, __ATOMIC_ACQUIRE) == pool_empty) {
                return static_cast<std::uint32_t>(i);
            }
        }
        for (std::size_t i = 0; i < n; ++i) {
            queue_pool_record& r = m_pool->record(i);
            if (__atomic_load_n(&r.state, __ATOMIC_ACQUIRE) == pool_free) {
                pooled_segment p;
                if (named(r, p)) {
                    evicted.push_back(std::move(p));
                }
                empty_record(r);
                return static_cast<std::uint32_t>(i);
            }
        }
        const auto now = std::chrono::steady_clock::now();
        if (now - m_last_reclaim < std::chrono::milliseconds(50)) {
            return static_cast<std::uint32_t>(n);
        }
        m_last_reclaim = now;
        std::uint32_t found = static_cast<std::uint32_t>(n);
        proc_cache seen;
        for (std::size_t i = 0; i < n; ++i) {
            queue_pool_record& r = m_pool->record(i);
            if (__atomic_load_n(&r.state, __ATOMIC_ACQUIRE) != pool_held) {
                continue;
            }
            const std::uint64_t pid = __atomic_load_n(&r.pid, __ATOMIC_RELAXED);
            const std::uint64_t start = __atomic_load_n(&r.start, __ATOMIC_RELAXED);
            if (valid_pid(pid) && check_process(pid, start, &seen).state != liveness::dead) {
                continue;
            }
            pooled_segment p;
            if (named(r, p)) {
                evicted.push_back(std::move(p)); // its holder's gc record names the dead process too
            }
            empty_record(r);
            if (found == n) {
                found = static_cast<std::uint32_t>(i);
            }
        }
        return found;
    }

    /// Under the lock: empties every free record (and, for `all`, every queued one, whose segments go
    /// with the ring), returning the free segments to unlink.
    std::vector<pooled_segment> take_records(bool all)
    {
        std::vector<pooled_segment> out;
        for (std::size_t i = 0; i < m_pool->count(); ++i) {
            queue_pool_record& r = m_pool->record(i);
            const std::uint32_t state = __atomic_load_n(&r.state, __ATOMIC_ACQUIRE);
            if (state == pool_free) {
                pooled_segment p;
                if (named(r, p)) {
                    out.push_back(std::move(p));
                }
                empty_record(r);
            } else if (all && state == pool_queued) {
                empty_record(r);
            }
        }
        return out;
    }

    void prune_cache() noexcept
    {
        std::vector<std::shared_ptr<mapping>> drop;
        try {
            std::lock_guard<std::mutex> g(m_pool->mutex());
            m_pool->prune(drop);
        } catch (...) {
        }
    }

    /// Reads again the header and trailer of a cached pooled segment whose layout changed since.
    /// @throws format_error if they are not valid
    static void refresh_layout(queue_pool::cached& c, std::uint32_t layout, const std::string& op)
    {
        if (c.info_known && c.layout == layout) {
            return;
        }
        mapping& m = *c.map;
        npy_info info = parse_npy(m.base(), m.size(), m.name(), m.size());
        trailer* t = find_trailer(m, info, op);
        if (t == nullptr) {
            raise<format_error>(op, m.name(), "the pooled segment has no ndshm trailer where its header says",
                                "something other than ndshm wrote into it", make_error_code(errc::corrupt_control));
        }
        m.set_trailer(t);
        c.info = std::move(info);
        c.info_known = true;
        c.layout = layout;
    }

    /// The segment of free record `idx`, which this process now holds, with its mapping (cached, or
    /// attached now and cached), owned by this process. Nothing if it cannot be used: the record is
    /// emptied.
    std::optional<queue_acquired> reuse_segment(std::uint32_t idx, std::uint32_t generation,
                                                const std::string& seg_name, file_id id, std::uint64_t created,
                                                const std::string& op)
    {
        const std::uint32_t layout = __atomic_load_n(&m_pool->record(idx).layout, __ATOMIC_RELAXED);
        queue_acquired a;
        std::shared_ptr<mapping> drop;
        std::vector<std::shared_ptr<mapping>> dropped;
        try {
            std::unique_lock<std::mutex> g(m_pool->mutex());
            queue_pool::cached* c = m_pool->find(idx, generation, id, drop);
            if (c == nullptr) {
                g.unlock();
                options o = m_attach;
                o.read_only = false;
                o.populate = false;
                npy_info info;
                std::uint32_t kind = 0;
                auto m = open_npy_segment(o, seg_name, op, info, kind);
                const trailer* t = m->get_trailer();
                if ((kind != kind_array && kind != kind_object) || m->id() != id || t == nullptr ||
                    t->created_ns != created) {
                    let_go(idx, generation);
                    return std::nullopt;
                }
                g.lock();
                m_pool->prune(dropped);
                queue_pool::cached& fresh = m_pool->cache()[idx];
                fresh = queue_pool::cached{};
                fresh.generation = generation;
                fresh.layout = layout;
                fresh.info = std::move(info);
                fresh.info_known = true;
                fresh.map = std::move(m);
                c = &fresh;
            }
            refresh_layout(*c, layout, op);
            a.previous = c->info;
            a.previous_known = true;
            a.map = c->map.get();
            a.lease = m_pool->lease(m_pool, idx, *c);
        } catch (...) {
            let_go(idx, generation);
            return std::nullopt;
        }
        a.handle = lease_handle(a.lease);
        a.fresh = false;
        take_ownership(*a.map); // the trailer names this process for gc, and the session owns the name
        return a;
    }

    /// Puts `am` at the tail, waiting for room until `deadline`; false if there was none in time.
    bool push_segment(const std::shared_ptr<mapping>& am, std::uint32_t type, std::uint32_t flags,
                      std::chrono::steady_clock::time_point deadline, const char* op)
    {
        guard g(*this, op, deadline);
        if (!g.locked()) {
            return false;
        }
        std::uint64_t s = 0;
        for (;;) {
            if (closed()) {
                g.unlock();
                raise<error>(op, name(), "the queue is closed", "push before close(); the item stays with the caller",
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
        e.dtype = type;
        e.flags = flags;
        e.dev = am->id().dev;
        e.ino = am->id().ino;
        e.created_ns = am->get_trailer()->created_ns;
        mark_queued(am.get(), e);
        // Until someone pops it, the item belongs to the queue's owner: gc keeps it while that process
        // runs and reclaims it with the queue if that process dies.
        set_trailer_owner(*am->get_trailer(), m_pool->queue_owner());
        am->disown();
        __atomic_store_n(&m_ctl->state, queue_pack(queue_head(s), queue_count(s) + 1), __ATOMIC_RELEASE);
        ++m_ctl->pushed;
        const bool wake = bump(m_ctl->not_empty, m_ctl->pop_waiters);
        g.unlock();
        if (wake) {
            futex_wake_all(&m_ctl->not_empty);
        }
        return true;
    }

    /// Under the lock: if `m` is a segment of this queue's pool that this process holds, the entry says
    /// so and the record becomes queued (it comes back when its consumer is done).
    void mark_queued(const mapping* m, queue_entry& e) noexcept
    {
        try {
            std::lock_guard<std::mutex> g(m_pool->mutex());
            pool_lease* l = m_pool->lease_of(m);
            if (l == nullptr) {
                return;
            }
            queue_pool_record& r = m_pool->record(l->index);
            if (__atomic_load_n(&r.state, __ATOMIC_ACQUIRE) != pool_held ||
                __atomic_load_n(&r.generation, __ATOMIC_RELAXED) != l->generation ||
                __atomic_load_n(&r.pid, __ATOMIC_RELAXED) != this_process().pid || r.ino != e.ino) {
                return;
            }
            e.pool = l->index + 1;
            e.pool_generation = l->generation;
            __atomic_store_n(&r.pid, std::uint64_t(0), __ATOMIC_RELAXED);
            __atomic_store_n(&r.state, std::uint32_t(pool_queued), __ATOMIC_RELEASE);
            l->queued_here = true;
        } catch (...) {
            // Not marked: it travels as a plain segment.
        }
    }

    /// Takes the head item, waiting until `deadline`: its segment's mapping (lease-backed for a pooled
    /// one) and header in `info`, or null if nothing came in time (or the queue is closed and drained).
    std::shared_ptr<mapping> pop_segment(std::chrono::steady_clock::time_point deadline, const char* op, bool object,
                                         ndshm::dtype want, npy_info& info)
    {
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
        std::string item_name;
        ndshm::dtype type{};
        if (!queue_entry_valid(e, item_name, type)) {
            drop_head(g, s);
            raise<format_error>(op, name(),
                                "the entry at the head of the queue is corrupt (no valid segment name "
                                "or dtype); it was dropped",
                                "something other than ndshm wrote into the queue's segment",
                                make_error_code(errc::corrupt_control));
        }
        const bool is_object = (e.flags & entry_object) != 0;
        if (is_object != object) {
            g.unlock();
            raise<error>(op, name(),
                         std::string("the next item, '") + item_name + "', is " +
                             (is_object ? "a composite object" : std::string("an array of ") + dtype_name(type)) +
                             "; it stays queued",
                         is_object ? "pop it with pop_object()" : "pop it with pop<T>()",
                         make_error_code(errc::wrong_kind));
        }
        if (!object && type != want) {
            g.unlock();
            raise<dtype_mismatch>(op, name(),
                                  std::string("the next array, '") + item_name + "', holds " + dtype_name(type) +
                                      ", not " + dtype_name(want) + " as requested; it stays queued",
                                  std::string("pop it with the element type for ") + dtype_name(type) +
                                      " (front_dtype() tells the type of the next array)",
                                  make_error_code(errc::dtype_mismatch));
        }
        // A segment of this queue's pool, as the entry and its record agree.
        const std::size_t n = m_pool->count();
        std::uint32_t idx = static_cast<std::uint32_t>(n);
        std::uint32_t layout = 0;
        if (e.pool != 0 && e.pool - 1 < n) {
            const queue_pool_record& r = m_pool->record(e.pool - 1);
            if (__atomic_load_n(&r.state, __ATOMIC_ACQUIRE) == pool_queued && r.generation == e.pool_generation &&
                r.dev == e.dev && r.ino == e.ino && r.created_ns == e.created_ns) {
                idx = e.pool - 1;
                layout = r.layout;
            }
        }
        const file_id id{e.dev, e.ino};
        std::shared_ptr<mapping> m;
        bool cached = false;
        std::shared_ptr<mapping> drop;
        std::vector<std::shared_ptr<mapping>> dropped;
        if (idx < n) {
            std::lock_guard<std::mutex> pg(m_pool->mutex());
            if (queue_pool::cached* c = m_pool->find(idx, e.pool_generation, id, drop)) {
                try {
                    refresh_layout(*c, layout, op);
                    m = c->map;
                    info = c->info;
                    cached = true;
                } catch (const format_error&) {
                    // Read it as a new attach would.
                }
            }
        }
        if (!m) {
            try {
                std::uint32_t kind = 0;
                m = open_npy_segment(m_attach, item_name, op, info, kind);
                if (kind != (object ? kind_object : kind_array)) {
                    m.reset();
                }
            } catch (const not_found&) {
                forget_queued(idx);
                drop_head(g, s); // it cannot come back: drop it so that the queue moves on
                throw;
            } catch (const format_error&) {
                forget_queued(idx);
                drop_head(g, s);
                throw;
            }
        }
        const bool shape_ok = object ? info.type == dtype::uint8 && info.shape.size() == 1 : info.type == type;
        if (!m || !shape_ok || !is_queued(*m, e) || !m->writable()) {
            forget_queued(idx);
            drop_head(g, s);
            raise<format_error>(op, name(),
                                "the queued segment '" + item_name + "' is not the ndshm " +
                                    (object ? "object" : "array") +
                                    " the queue recorded (another file has its name now, or its kind, dtype or "
                                    "trailer differ); it was dropped from the queue, and the file left to whoever "
                                    "made it",
                                "something replaced the segment while it was queued", errno_code(EILSEQ));
        }
        std::shared_ptr<mapping> handle = m;
        if (idx < n) {
            try {
                std::lock_guard<std::mutex> pg(m_pool->mutex());
                if (!cached) {
                    m_pool->prune(dropped);
                    queue_pool::cached& c = m_pool->cache()[idx];
                    c = queue_pool::cached{};
                    c.generation = e.pool_generation;
                    c.layout = layout;
                    c.info = info;
                    c.info_known = true;
                    c.map = m;
                }
                auto& c = m_pool->cache()[idx];
                hold(m_pool->record(idx), this_process());
                handle = lease_handle(m_pool->lease(m_pool, idx, c));
            } catch (...) {
                forget_queued(idx); // a plain segment from now on
                handle = m;
            }
        }
        take_ownership(*m); // the trailer names this process for gc, and the session owns the name
        __atomic_store_n(&m_ctl->state, queue_pack((queue_head(s) + 1) % m_capacity, queue_count(s) - 1),
                         __ATOMIC_RELEASE);
        ++m_ctl->popped;
        const bool wake = bump(m_ctl->not_full, m_ctl->push_waiters);
        g.unlock();
        if (wake) {
            futex_wake_all(&m_ctl->not_full);
        }
        if (m_populate && !cached) {
            prefault(*m);
        }
        return handle;
    }

    /// Under the lock: a queued pooled record whose segment will not be popped after all is forgotten.
    void forget_queued(std::uint32_t idx) noexcept
    {
        if (idx < m_pool->count()) {
            queue_pool_record& r = m_pool->record(idx);
            if (__atomic_load_n(&r.state, __ATOMIC_ACQUIRE) == pool_queued) {
                empty_record(r);
            }
        }
    }

    /// True if `m` maps the segment that entry `e` was made for (not another one created later under its
    /// name).
    static bool is_queued(const mapping& m, const queue_entry& e) noexcept
    {
        const trailer* t = m.get_trailer();
        return t != nullptr && m.id() == file_id{e.dev, e.ino} && t->created_ns == e.created_ns;
    }

    /// Unlinks a segment's name if it still names the segment of identity (`id`, `created_ns`). Checked
    /// on a mapping of it, which holds the file meanwhile (see unlink_if_same); names that cannot be
    /// attached are gone or are not it, and are left alone.
    void unlink_queued(const std::string& seg_name, file_id id, std::uint64_t created_ns) const noexcept
    {
        try {
            options o = m_attach;
            o.read_only = true;
            o.ready_timeout = std::chrono::milliseconds(0);
            npy_info info;
            std::uint32_t kind = 0;
            const auto m = open_npy_segment(o, seg_name, "remove queue", info, kind);
            const trailer* t = m->get_trailer();
            if (t != nullptr && m->id() == id && t->created_ns == created_ns) {
                (void)unlink_if_same(m->loc(), m->id());
            }
        } catch (...) {
        }
    }

    void check_pushable(const std::shared_ptr<mapping>& am, bool whole, std::uint32_t kind, const char* op) const
    {
        const char* what = kind == kind_object ? "shared_object" : "shared_ndarray";
        if (!am) {
            raise<error>(op, name(), std::string("the ") + what + " is empty", "push a handle that holds an item",
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
            refuse("this process does not own it (it was attached, persisted, already pushed, or created "
                   "by another process), so it cannot hand ownership over",
                   "push what this process created (create, from_array, make, share) or popped");
        }
        const trailer* t = am->get_trailer();
        if (t == nullptr || !am->writable()) {
            refuse("it has no writable ndshm trailer to record its new owner in", "push what ndshm made");
        }
        if (t->kind != kind) {
            refuse("its segment is not " + std::string(kind == kind_object ? "a composite object" : "an array"),
                   "push arrays and objects made by ndshm");
        }
        if (load_acquire(t->state) != state_ready) {
            refuse("it is not published yet", "push it after create() or from_array() returned");
        }
        if (am->loc().dir != m_map->loc().dir) {
            refuse("it lives in another backend ('" + am->loc().path() + "') than the queue ('" + m_map->loc().path() +
                       "')",
                   "create it with the same options::directory (or NDSHM_DIR) as the queue");
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
    options m_make;
    bool m_populate = false;
    std::shared_ptr<queue_pool> m_pool;
    std::chrono::steady_clock::time_point m_last_reclaim{};
    spin_policy m_spin; // before a pop or push sleeps
};

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
        const std::string op = "create queue";
        if (capacity == 0 || capacity > detail::queue_max_capacity) {
            detail::raise<error>(op, opt.name, "capacity " + std::to_string(capacity) + " is out of range",
                                 "pass a capacity from 1 to " + std::to_string(detail::queue_max_capacity),
                                 detail::errno_code(EINVAL));
        }
        if (recycled > detail::queue_max_pool) {
            detail::raise<error>(op, opt.name, "a pool of " + std::to_string(recycled) + " segments is too large",
                                 "keep at most " + std::to_string(detail::queue_max_pool) + " segments for reuse",
                                 detail::errno_code(EINVAL));
        }
        if (opt.read_only) {
            detail::raise<error>(op, opt.name, "options::read_only is set, but a queue is written by every user",
                                 "leave options::read_only false", detail::errno_code(EINVAL));
        }
        detail::npy_info info;
        auto m = detail::create_array_segment(opt, dtype::uint8, {detail::queue_data_bytes(capacity, recycled)}, false,
                                              op, info);
        m->get_trailer()->kind = detail::kind_queue;
        auto* ctl = ::new (m->base() + info.data_offset) detail::queue_control{};
        std::memcpy(ctl->magic, detail::queue_magic, sizeof ctl->magic);
        ctl->version = detail::queue_version;
        ctl->entry_size = sizeof(detail::queue_entry);
        ctl->record_size = sizeof(detail::queue_pool_record);
        ctl->capacity = capacity;
        ctl->pool_records = static_cast<std::uint32_t>(recycled);
        detail::init_lock(&ctl->lock);
        m->publish();
        return array_queue(std::make_shared<detail::queue_impl>(std::move(m), ctl, capacity, recycled, opt));
    }

    /// Opens the queue `name` that another process (or this one) created. The handle does not own it.
    /// @throws not_found, permission_denied, format_error (not a queue, or corrupt), error
    static array_queue attach(const std::string& name, const options& opt = {})
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
                                        "check the name; array_queue::create makes queues",
                                        make_error_code(errc::wrong_kind));
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
            corrupt("unknown queue format (magic or version " + std::to_string(ctl->version) +
                    "; this ndshm reads version " + std::to_string(detail::queue_version) + ")");
        }
        const std::uint64_t capacity = ctl->capacity;
        const std::uint64_t pool = ctl->pool_records;
        if (ctl->entry_size != sizeof(detail::queue_entry) || ctl->record_size != sizeof(detail::queue_pool_record) ||
            capacity == 0 || capacity > detail::queue_max_capacity || pool > detail::queue_max_pool ||
            detail::queue_data_bytes(static_cast<std::size_t>(capacity), static_cast<std::size_t>(pool)) >
                info.nbytes) {
            corrupt("its capacity (" + std::to_string(capacity) + ") and pool (" + std::to_string(pool) +
                    ") do not fit its " + std::to_string(info.nbytes) + " bytes");
        }
        return array_queue(std::make_shared<detail::queue_impl>(std::move(m), ctl, static_cast<std::size_t>(capacity),
                                                                static_cast<std::size_t>(pool), opt));
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
            detail::raise<error>(op, "", "the array_queue handle is empty (default-constructed, moved from or reset)",
                                 "create a queue with array_queue::create or open one with array_queue::attach",
                                 make_error_code(errc::invalid_argument));
        }
        return *m_impl;
    }

    std::shared_ptr<detail::queue_impl> m_impl;
};

namespace detail {

/// Lets ndshm::share(obj, queue) (object.hpp) reach the queue's pool.
struct queue_access {
    static queue_impl& impl(array_queue& q, const char* op) { return q.impl(op); }
};

} // namespace detail

} // namespace ndshm

#endif
