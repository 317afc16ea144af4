/// @file detail/queue_pool.hpp
/// An array queue's recycling pool as one process sees it: the records in the queue's segment (see
/// queue_format.hpp) and their changes of state, the mappings of pooled segments that this process
/// keeps between handoffs, and the leases through which handles hold a pooled segment
/// (queue_recycling.hpp hands the segments out).
///
/// A handle on a pooled segment (an array from array_queue::make or pop, an object from
/// ndshm::share(obj, queue) or pop_object) holds a lease: its mapping pointer shares the lease's
/// reference count. When the last handle goes, the lease decides where the segment goes: back to the
/// queue (this process still owns it: the trailer names the queue's owner again and the record becomes
/// free), nowhere (it was pushed into this queue: it comes back), or out of the pool (persisted, handed
/// to another queue or process, or the queue is closed: the record is emptied and the segment goes like
/// any other). The mapping itself stays cached, so that the next handoff of the same segment in this
/// process maps nothing and takes no page fault.
#ifndef NDSHM_DETAIL_QUEUE_POOL_HPP
#define NDSHM_DETAIL_QUEUE_POOL_HPP

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "../error.hpp"
#include "config.hpp"
#include "liveness.hpp"
#include "npy.hpp"
#include "queue_format.hpp"
#include "segment_impl.hpp"
#include "segment_trailer.hpp"
#include "trailer.hpp"

namespace ndshm::detail {

// ---- a record's changes of state (see queue_format.hpp) ------------------------------------------

/// Makes this process the holder of record `r`: the holder first, then the state.
inline void hold_record(queue_pool_record& r, const process_identity& me) noexcept
{
    __atomic_store_n(&r.pid, me.pid, __ATOMIC_RELAXED);
    __atomic_store_n(&r.start, me.start, __ATOMIC_RELAXED);
    __atomic_store_n(&r.state, std::uint32_t(pool_held), __ATOMIC_RELEASE);
}

/// Its holder lets record `r` go, to `state`: pool_free (the segment is the queue's again) or
/// pool_queued (an entry of the ring names it).
inline void release_record(queue_pool_record& r, std::uint32_t state) noexcept
{
    __atomic_store_n(&r.pid, std::uint64_t(0), __ATOMIC_RELAXED);
    __atomic_store_n(&r.state, state, __ATOMIC_RELEASE);
}

/// Forgets the segment of record `r` (under the lock, or by its holder): a new generation, so that no
/// cached mapping of the old segment passes for it.
inline void empty_record(queue_pool_record& r) noexcept
{
    __atomic_store_n(&r.generation, __atomic_load_n(&r.generation, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
    release_record(r, pool_empty);
}

/// True if process `pid` holds record `r` in its generation `generation`.
inline bool held_by(const queue_pool_record& r, std::uint32_t generation, std::uint64_t pid) noexcept
{
    return __atomic_load_n(&r.state, __ATOMIC_ACQUIRE) == pool_held &&
           __atomic_load_n(&r.generation, __ATOMIC_RELAXED) == generation &&
           __atomic_load_n(&r.pid, __ATOMIC_RELAXED) == pid;
}

/// True if a pooled segment of `bytes` may serve a request for `need` bytes: it fits, and wastes at
/// most half of itself (a 1 GiB segment does not carry 4 KiB arrays).
constexpr bool pool_fits(std::uint64_t bytes, std::uint64_t need) noexcept
{
    return need <= bytes && bytes - need <= bytes / 2;
}

/// What a record named, for unlinking after the queue's lock is released.
struct pooled_segment {
    std::string name;
    file_id id;
    std::uint64_t created_ns = 0;
};

/// What record `r` names, if anything usable.
NDSHM_DECL bool named(const queue_pool_record& r, pooled_segment& out);

class queue_pool;

/// One handout of a pooled segment in this process (see the file comment). Handles share it through
/// the aliasing shared_ptr<mapping> that lease_handle makes.
struct pool_lease {
    std::shared_ptr<queue_pool> pool;
    std::shared_ptr<mapping> seg;
    std::uint32_t index = 0;
    std::uint32_t generation = 0;
    std::uint64_t ticket = 0;
    bool queued_here = false; // set by a push into this queue
    pool_lease() = default;
    pool_lease(const pool_lease&) = delete;
    pool_lease& operator=(const pool_lease&) = delete;
    inline ~pool_lease();
};

/// A mapping pointer whose reference count is the lease's: the lease ends with the last handle.
inline std::shared_ptr<mapping> lease_handle(const std::shared_ptr<pool_lease>& l) noexcept
{
    return std::shared_ptr<mapping>(l, l->seg.get());
}

/// The pool of one queue in this process.
class queue_pool {
public:
    /// A pooled segment's mapping in this process, of record generation `generation`.
    struct cached {
        std::uint32_t generation = 0;
        std::uint32_t layout = 0; // the record's layout when `info` was read
        bool info_known = false;
        npy_info info; // the segment's header as of `layout`
        std::shared_ptr<mapping> map;
        std::uint64_t ticket = 0; // of the live lease, 0 if none
        pool_lease* lease = nullptr;

        /// Reads again the header and trailer of the segment if its record's layout changed since.
        /// @throws format_error if they are not valid
        NDSHM_DECL void refresh(std::uint32_t record_layout, const std::string& op);
    };

    queue_pool(std::shared_ptr<mapping> queue_map, queue_control* ctl, queue_pool_record* records, std::size_t count)
        : m_queue(std::move(queue_map)), m_ctl(ctl), m_records(records), m_count(count), m_pid(current_pid())
    {
    }
    queue_pool(const queue_pool&) = delete;
    queue_pool& operator=(const queue_pool&) = delete;

    std::size_t count() const noexcept { return m_count; }
    queue_pool_record& record(std::size_t i) const noexcept { return m_records[i]; }
    bool closed() const noexcept { return __atomic_load_n(&m_ctl->closed, __ATOMIC_ACQUIRE) != 0; }

    /// The process recorded as the queue's owner in its trailer.
    process_identity queue_owner() const noexcept { return trailer_owner(*m_queue); }

    std::mutex& mutex() noexcept { return m_mutex; }
    /// The cache, by record index. Callers hold mutex().
    std::unordered_map<std::uint32_t, cached>& cache() noexcept { return m_cache; }

    /// The cached mapping of record `i` if it is of `generation` and maps the file `id`; else null (and
    /// a stale entry without a live lease is dropped into `drop`, to be released outside the mutex).
    /// Callers hold mutex().
    NDSHM_DECL cached* find(std::uint32_t i, std::uint32_t generation, file_id id,
                            std::shared_ptr<mapping>& drop) noexcept;

    /// Caches `map` as the mapping of record `i` in its generation `generation`, in place of any other,
    /// after dropping stale entries into `drop` (see prune). Callers hold mutex().
    NDSHM_DECL cached& keep(std::uint32_t i, std::uint32_t generation, std::shared_ptr<mapping> map,
                            std::vector<std::shared_ptr<mapping>>& drop);

    /// Makes a lease of record `i` for `c` (a cache entry of this pool). Callers hold mutex().
    NDSHM_DECL std::shared_ptr<pool_lease> lease(const std::shared_ptr<queue_pool>& self, std::uint32_t i, cached& c);

    /// The live lease of this pool whose segment is `m`, or null. Callers hold mutex().
    NDSHM_DECL pool_lease* lease_of(const mapping* m) noexcept;

    /// Drops cached mappings whose record moved on to another segment (or left the pool), unless a
    /// lease still holds them: a mapping kept for nothing would keep an unlinked segment's memory.
    /// Callers hold mutex(); the dropped mappings are released with `drop` outside it.
    NDSHM_DECL void prune(std::vector<std::shared_ptr<mapping>>& drop);

    /// This process's queue handle is gone: keep no mapping for later (those of live leases stay
    /// until their handles go).
    NDSHM_DECL void detach() noexcept;

    // ---- the records, under the queue's lock ---------------------------------------------------------

    /// Lets go of record `idx` of generation `generation`, which this process holds: the segment is not
    /// (or no longer) part of the pool.
    void let_go(std::uint32_t idx, std::uint32_t generation) noexcept
    {
        queue_pool_record& r = m_records[idx];
        if (held_by(r, generation, this_process().pid)) {
            empty_record(r);
        }
    }

    /// A queued record whose segment will not be popped after all is forgotten.
    void forget_queued(std::uint32_t idx) noexcept
    {
        if (idx < m_count) {
            queue_pool_record& r = m_records[idx];
            if (__atomic_load_n(&r.state, __ATOMIC_ACQUIRE) == pool_queued) {
                empty_record(r);
            }
        }
    }

    /// The smallest free record whose segment may serve `bytes` (pool_fits), or the record count.
    NDSHM_DECL std::uint32_t best_fit(std::size_t bytes) const noexcept;

    /// A record for a new segment. An empty one; else a free one, whose segment is evicted (to
    /// `evicted`, unlinked after the lock); else one whose holder died (positive evidence, looked for at
    /// most every 50 ms). The record count if there is none.
    NDSHM_DECL std::uint32_t free_record(std::vector<pooled_segment>& evicted);

    /// Empties every free record (and, for `all`, every queued one, whose segments go with the ring),
    /// returning the free segments to unlink.
    NDSHM_DECL std::vector<pooled_segment> take_records(bool all);

    /// If `m` is a segment of this pool that this process holds, entry `e` says so and the record
    /// becomes queued (it comes back when its consumer is done).
    NDSHM_DECL void mark_queued(const mapping* m, queue_entry& e) noexcept;

    /// The record of the pooled segment that entry `e` names, if the entry and the record agree that it
    /// is one (its layout in `layout`); else the record count.
    std::uint32_t queued_record(const queue_entry& e, std::uint32_t& layout) const noexcept
    {
        if (e.pool == 0 || e.pool - 1 >= m_count) {
            return static_cast<std::uint32_t>(m_count);
        }
        const queue_pool_record& r = m_records[e.pool - 1];
        if (__atomic_load_n(&r.state, __ATOMIC_ACQUIRE) != pool_queued || r.generation != e.pool_generation ||
            r.dev != e.dev || r.ino != e.ino || r.created_ns != e.created_ns) {
            return static_cast<std::uint32_t>(m_count);
        }
        layout = r.layout;
        return e.pool - 1;
    }

    /// Drops the cached mappings that prune() finds stale.
    NDSHM_DECL void prune_cache() noexcept;

    /// The end of a lease (its last handle went): see the file comment.
    NDSHM_DECL void release(pool_lease& l) noexcept;

private:
    std::shared_ptr<mapping> m_queue; // keeps the records mapped while leases live
    queue_control* m_ctl;
    queue_pool_record* m_records;
    std::size_t m_count;
    pid_t m_pid; // the process this view belongs to
    std::mutex m_mutex;
    std::unordered_map<std::uint32_t, cached> m_cache;
    std::uint64_t m_tickets = 0;
    bool m_detached = false;
    std::chrono::steady_clock::time_point m_last_reclaim{}; // see free_record
};

inline pool_lease::~pool_lease()
{
    if (pool) {
        pool->release(*this);
    }
}

/// Moves (or places) the trailer of pooled segment `m` for data of `data_bytes` at `data_offset`, kind
/// `kind`: the record keeps its identity (creation time), lock and flags. A reused segment may hold
/// less than it has room for: the trailer follows the data, as in every segment, and the bytes after it
/// are slack. The old position's magic is cleared so that nothing takes it for a trailer.
NDSHM_DECL trailer* place_pooled_trailer(mapping& m, std::uint32_t kind, std::size_t data_offset,
                                         std::size_t data_bytes) noexcept;

} // namespace ndshm::detail

#if NDSHM_DEFINITIONS
namespace ndshm::detail {

bool named(const queue_pool_record& r, pooled_segment& out)
{
    if (r.ino == 0 || !valid_segment_name(r.name, sizeof r.name, out.name)) {
        return false;
    }
    out.id = file_id{r.dev, r.ino};
    out.created_ns = r.created_ns;
    return true;
}

void queue_pool::cached::refresh(std::uint32_t record_layout, const std::string& op)
{
    if (info_known && layout == record_layout) {
        return;
    }
    mapping& m = *map;
    npy_info fresh = parse_npy(m.base(), m.size(), m.name(), m.size());
    trailer* t = find_trailer(m, fresh, op);
    if (t == nullptr) {
        raise<format_error>(op, m.name(), "the pooled segment has no ndshm trailer where its header says",
                            "something other than ndshm wrote into it", make_error_code(errc::corrupt_control));
    }
    m.set_trailer(t);
    info = std::move(fresh);
    info_known = true;
    layout = record_layout;
}

queue_pool::cached* queue_pool::find(std::uint32_t i, std::uint32_t generation, file_id id,
                                     std::shared_ptr<mapping>& drop) noexcept
{
    const auto it = m_cache.find(i);
    if (it == m_cache.end()) {
        return nullptr;
    }
    cached& c = it->second;
    if (c.generation == generation && c.map && c.map->id() == id) {
        return &c;
    }
    if (c.lease == nullptr) {
        drop = std::move(c.map);
        m_cache.erase(it);
    }
    return nullptr;
}

queue_pool::cached& queue_pool::keep(std::uint32_t i, std::uint32_t generation, std::shared_ptr<mapping> map,
                                     std::vector<std::shared_ptr<mapping>>& drop)
{
    prune(drop);
    cached& c = m_cache[i];
    c = cached{};
    c.generation = generation;
    c.map = std::move(map);
    return c;
}

std::shared_ptr<pool_lease> queue_pool::lease(const std::shared_ptr<queue_pool>& self, std::uint32_t i, cached& c)
{
    auto l = std::make_shared<pool_lease>();
    l->pool = self;
    l->seg = c.map;
    l->index = i;
    l->generation = c.generation;
    l->ticket = ++m_tickets;
    c.ticket = l->ticket;
    c.lease = l.get();
    return l;
}

pool_lease* queue_pool::lease_of(const mapping* m) noexcept
{
    for (auto& e : m_cache) {
        if (e.second.lease != nullptr && e.second.map.get() == m) {
            return e.second.lease;
        }
    }
    return nullptr;
}

void queue_pool::prune(std::vector<std::shared_ptr<mapping>>& drop)
{
    for (auto it = m_cache.begin(); it != m_cache.end();) {
        const queue_pool_record& r = m_records[it->first];
        const bool current = __atomic_load_n(&r.generation, __ATOMIC_ACQUIRE) == it->second.generation &&
                             __atomic_load_n(&r.state, __ATOMIC_ACQUIRE) != pool_empty;
        if (!current && it->second.lease == nullptr) {
            drop.push_back(std::move(it->second.map));
            it = m_cache.erase(it);
        } else {
            ++it;
        }
    }
}

void queue_pool::detach() noexcept
{
    std::vector<std::shared_ptr<mapping>> drop;
    {
        std::lock_guard<std::mutex> g(m_mutex);
        m_detached = true;
        for (auto it = m_cache.begin(); it != m_cache.end();) {
            if (it->second.lease == nullptr) {
                drop.push_back(std::move(it->second.map));
                it = m_cache.erase(it);
            } else {
                ++it;
            }
        }
    }
}

std::uint32_t queue_pool::best_fit(std::size_t bytes) const noexcept
{
    std::uint32_t idx = static_cast<std::uint32_t>(m_count);
    std::uint64_t best = 0;
    for (std::size_t i = 0; i < m_count; ++i) {
        const queue_pool_record& r = m_records[i];
        if (__atomic_load_n(&r.state, __ATOMIC_ACQUIRE) != pool_free) {
            continue;
        }
        const std::uint64_t b = r.bytes;
        if (pool_fits(b, bytes) && (idx == m_count || b < best)) {
            idx = static_cast<std::uint32_t>(i);
            best = b;
        }
    }
    return idx;
}

std::uint32_t queue_pool::free_record(std::vector<pooled_segment>& evicted)
{
    const std::size_t n = m_count;
    for (std::size_t i = 0; i < n; ++i) {
        if (__atomic_load_n(&m_records[i].state, __ATOMIC_ACQUIRE) == pool_empty) {
            return static_cast<std::uint32_t>(i);
        }
    }
    for (std::size_t i = 0; i < n; ++i) {
        queue_pool_record& r = m_records[i];
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
        queue_pool_record& r = m_records[i];
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

std::vector<pooled_segment> queue_pool::take_records(bool all)
{
    std::vector<pooled_segment> out;
    for (std::size_t i = 0; i < m_count; ++i) {
        queue_pool_record& r = m_records[i];
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

void queue_pool::mark_queued(const mapping* m, queue_entry& e) noexcept
{
    try {
        std::lock_guard<std::mutex> g(m_mutex);
        pool_lease* l = lease_of(m);
        if (l == nullptr) {
            return;
        }
        queue_pool_record& r = m_records[l->index];
        if (!held_by(r, l->generation, this_process().pid) || r.ino != e.ino) {
            return;
        }
        e.pool = l->index + 1;
        e.pool_generation = l->generation;
        release_record(r, pool_queued);
        l->queued_here = true;
    } catch (...) {
        // Not marked: it travels as a plain segment.
    }
}

void queue_pool::prune_cache() noexcept
{
    std::vector<std::shared_ptr<mapping>> drop;
    try {
        std::lock_guard<std::mutex> g(m_mutex);
        prune(drop);
    } catch (...) {
    }
}

void queue_pool::release(pool_lease& l) noexcept
{
    if (current_pid() != m_pid) {
        return; // a forked child's copy: the segment is its parent's business
    }
    std::shared_ptr<mapping> drop; // released after the mutex: munmap, perhaps unlink
    try {
        std::lock_guard<std::mutex> g(m_mutex);
        const auto it = m_cache.find(l.index);
        if (it == m_cache.end() || it->second.ticket != l.ticket) {
            return; // a lease of an earlier handout: the segment moved on since
        }
        cached& c = it->second;
        c.lease = nullptr;
        c.ticket = 0;
        queue_pool_record& r = m_records[l.index];
        const bool mine = held_by(r, l.generation, this_process().pid);
        const bool owned = l.seg->owned();
        trailer* t = l.seg->get_trailer();
        if (owned && mine && !closed() && t != nullptr && l.seg->writable()) {
            // Back to the queue: it belongs to the queue's owner again, for gc too.
            set_trailer_owner(*t, queue_owner());
            l.seg->disown();
            release_record(r, pool_free);
            if (m_detached) {
                drop = std::move(c.map);
                m_cache.erase(it);
            }
            return;
        }
        if (l.queued_here && !owned) {
            return; // queued in this queue: it comes back, to this process or another
        }
        // It leaves the pool. Owned still, it is unlinked as any owned array when its mapping goes.
        if (mine) {
            empty_record(r);
        }
        drop = std::move(c.map);
        m_cache.erase(it);
    } catch (...) {
        // std::mutex failing to lock: leave the record; the segment goes with its handles as usual.
    }
}

trailer* place_pooled_trailer(mapping& m, std::uint32_t kind, std::size_t data_offset, std::size_t data_bytes) noexcept
{
    trailer* old = m.get_trailer();
    auto* t = reinterpret_cast<trailer*>(m.base() + trailer_offset(data_offset + data_bytes));
    if (old != nullptr && old != t) {
        trailer copy;
        std::memcpy(&copy, old, sizeof copy);
        const auto* o = reinterpret_cast<unsigned char*>(old);
        const auto* n = reinterpret_cast<unsigned char*>(t);
        if (o + sizeof(trailer) <= n || n + sizeof(trailer) <= o) {
            std::memset(old->magic, 0, sizeof old->magic);
        }
        std::memcpy(t, &copy, sizeof copy);
    }
    t->kind = kind;
    t->data_offset = data_offset;
    t->data_bytes = data_bytes;
    store_release(t->state, state_ready);
    m.set_trailer(t);
    return t;
}

} // namespace ndshm::detail
#endif // NDSHM_DEFINITIONS

#endif
