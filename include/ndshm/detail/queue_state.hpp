/// @file detail/queue_state.hpp
/// An array queue's segment as one process sees it: the control block and the ring of entries
/// (queue_format.hpp), the queue's lock, and the futex words on which pushes wait for room and pops
/// for items. Also the backend that the queued items live in: how this process attaches them, makes
/// the segments of the queue's pool, and unlinks what the queue leaves behind.
#ifndef NDSHM_DETAIL_QUEUE_STATE_HPP
#define NDSHM_DETAIL_QUEUE_STATE_HPP

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "../dtype.hpp"
#include "../error.hpp"
#include "../options.hpp"
#include "config.hpp"
#include "npy.hpp"
#include "queue_format.hpp"
#include "segment_impl.hpp"
#include "sync.hpp"
#include "sys.hpp"
#include "trailer.hpp"

namespace ndshm::detail {

/// The queue's shared state in this process: its mapping, control block and ring.
class queue_state {
public:
    NDSHM_DECL queue_state(std::shared_ptr<mapping> m, queue_control* ctl, std::size_t capacity, const options& opt);
    queue_state(const queue_state&) = delete;
    queue_state& operator=(const queue_state&) = delete;

    const std::string& name() const noexcept { return m_map->name(); }
    std::size_t capacity() const noexcept { return m_capacity; }
    std::size_t size() const noexcept
    {
        const std::uint64_t s = __atomic_load_n(&m_ctl->state, __ATOMIC_ACQUIRE);
        return static_cast<std::size_t>(std::min<std::uint64_t>(queue_count(s), m_capacity));
    }
    bool closed() const noexcept { return __atomic_load_n(&m_ctl->closed, __ATOMIC_ACQUIRE) != 0; }
    std::uint64_t reused() const noexcept { return __atomic_load_n(&m_ctl->reused, __ATOMIC_ACQUIRE); }

    /// The mapping of the queue's segment.
    const std::shared_ptr<mapping>& queue_map() const noexcept { return m_map; }
    queue_control& control() const noexcept { return *m_ctl; }
    /// The ring's entry at index `i` (below the capacity).
    queue_entry& ring(std::uint64_t i) const noexcept { return m_ring[i]; }
    /// How this process attaches queued items: the queue's backend, the caller's ready_timeout.
    const options& attach_options() const noexcept { return m_attach; }
    /// How the pool's segments are made: the queue's backend and permission bits.
    const options& make_options() const noexcept { return m_make; }
    /// options::populate of the handle: prefault what is popped.
    bool populate() const noexcept { return m_populate; }

    /// Holds the queue's lock for a scope, and waits on its futex words. Taking the lock may time out
    /// (a stopped peer holds it): check locked().
    class guard {
    public:
        guard(queue_state& q, const char* op, std::chrono::steady_clock::time_point deadline)
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
        NDSHM_DECL bool wait(std::uint32_t& word, std::uint32_t& waiters,
                             std::chrono::steady_clock::time_point deadline);

    private:
        void checked()
        {
            // A process that died holding the lock left no half-done change visible: every change
            // becomes visible through one store of `state`. Still, shared memory is checked on every use.
            if (m_lock.locked()) {
                m_q.check_state(*this, m_op.c_str());
            }
        }

        queue_state& m_q;
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

    /// Wakes every process that waits, for room or for an item, whatever it waits for.
    void wake_everyone() noexcept
    {
        futex_wake_all(&m_ctl->not_empty);
        futex_wake_all(&m_ctl->not_full);
    }

    /// Under the lock, after a change that every waiter must see (the queue closed, or emptied): bumps
    /// both futex words, lets the lock go and wakes everyone.
    NDSHM_DECL void release_everyone(guard& g) noexcept;

    /// Under the lock: the head of state `s` moves on by one entry, and a pusher waiting for room wakes.
    /// Lets the lock go.
    void advance_head(guard& g, std::uint64_t s) noexcept
    {
        __atomic_store_n(&m_ctl->state, queue_pack((queue_head(s) + 1) % m_capacity, queue_count(s) - 1),
                         __ATOMIC_RELEASE);
        const bool wake = bump(m_ctl->not_full, m_ctl->push_waiters);
        g.unlock();
        if (wake) {
            futex_wake_all(&m_ctl->not_full);
        }
    }

    /// The oldest item's dtype and kind (a snapshot); false if the queue is empty or the entry is not valid.
    NDSHM_DECL bool front(const char* op, ndshm::dtype& type, bool& object);

    /// Closes the queue for every process and wakes every waiter.
    NDSHM_DECL void close();

    /// Unlinks a segment's name if it still names the segment of identity (`id`, `created_ns`). Checked
    /// on a mapping of it, which holds the file meanwhile (see unlink_if_same); names that cannot be
    /// attached are gone or are not it, and are left alone.
    NDSHM_DECL void unlink_queued(const std::string& seg_name, file_id id, std::uint64_t created_ns) const noexcept;

private:
    lock_context lock_ctx(const std::string& op) const noexcept { return {op, name(), "the queue's lock"}; }

    /// The permission bits of the queue's own segment, for the segments of its pool.
    NDSHM_DECL std::uint32_t queue_mode() const noexcept;

    void check_state(guard& g, const char* op)
    {
        const std::uint64_t s = __atomic_load_n(&m_ctl->state, __ATOMIC_ACQUIRE);
        if (queue_head(s) >= m_capacity || queue_count(s) > m_capacity) {
            raise_corrupt_state(g, op, s);
        }
    }

    /// check_state finding state `s` out of range: lets the lock go and throws format_error.
    [[noreturn, gnu::cold]] NDSHM_DECL void raise_corrupt_state(guard& g, const char* op, std::uint64_t s);

    std::shared_ptr<mapping> m_map;
    queue_control* m_ctl;
    queue_entry* m_ring;
    std::size_t m_capacity;
    options m_attach;
    options m_make;
    bool m_populate = false;
    spin_policy m_spin; // before a pop or push sleeps
};

} // namespace ndshm::detail

#if NDSHM_DEFINITIONS
namespace ndshm::detail {

queue_state::queue_state(std::shared_ptr<mapping> m, queue_control* ctl, std::size_t capacity, const options& opt)
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
}

bool queue_state::guard::wait(std::uint32_t& word, std::uint32_t& waiters,
                              std::chrono::steady_clock::time_point deadline)
{
    if (deadline != std::chrono::steady_clock::time_point::max() && std::chrono::steady_clock::now() >= deadline) {
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
        while (n != 0 && !__atomic_compare_exchange_n(&waiters, &n, n - 1, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
        }
        m_q.m_spin.slept(std::chrono::steady_clock::now() - started);
    }
    if (!m_lock.relock(lock_deadline(deadline), m_q.lock_ctx(m_op))) {
        return false;
    }
    checked();
    return true;
}

void queue_state::release_everyone(guard& g) noexcept
{
    (void)bump(m_ctl->not_empty, m_ctl->pop_waiters);
    (void)bump(m_ctl->not_full, m_ctl->push_waiters);
    g.unlock();
    wake_everyone();
}

bool queue_state::front(const char* op, ndshm::dtype& type, bool& object)
{
    guard g(*this, op, std::chrono::steady_clock::time_point::max());
    const std::uint64_t s = __atomic_load_n(&m_ctl->state, __ATOMIC_ACQUIRE);
    if (queue_count(s) == 0) {
        return false;
    }
    std::string array_name;
    const queue_entry& e = m_ring[queue_head(s)];
    if (!queue_entry_valid(e, array_name, type)) {
        return false;
    }
    object = (e.flags & entry_object) != 0;
    return true;
}

void queue_state::close()
{
    guard g(*this, "close queue", std::chrono::steady_clock::time_point::max());
    __atomic_store_n(&m_ctl->closed, 1u, __ATOMIC_RELEASE);
    release_everyone(g);
}

void queue_state::unlink_queued(const std::string& seg_name, file_id id, std::uint64_t created_ns) const noexcept
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

std::uint32_t queue_state::queue_mode() const noexcept
{
    struct stat st {};
    const std::string path = file_path(m_map->loc());
    if (retry_eintr([&] { return sys().fstatat(AT_FDCWD, path.c_str(), &st, AT_SYMLINK_NOFOLLOW); }) != 0) {
        return 0600;
    }
    return static_cast<std::uint32_t>(st.st_mode) & 0777u;
}

void queue_state::raise_corrupt_state(guard& g, const char* op, std::uint64_t s)
{
    g.unlock();
    raise<format_error>(op, name(),
                        "the queue's segment is corrupt (head " + std::to_string(queue_head(s)) + ", count " +
                            std::to_string(queue_count(s)) + ", capacity " + std::to_string(m_capacity) + ")",
                        "something other than ndshm wrote into it; remove it and create a new queue",
                        make_error_code(errc::corrupt_control));
}

} // namespace ndshm::detail
#endif // NDSHM_DEFINITIONS

#endif
