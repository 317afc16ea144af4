/// @file detail/queue_pool.hpp
/// An array queue's recycling pool as one process sees it: the records in the queue's segment (see
/// queue_format.hpp), the mappings of pooled segments that this process keeps between handoffs, and
/// the leases through which handles hold a pooled segment.
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

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>

#include "npy.hpp"
#include "queue_format.hpp"
#include "segment_impl.hpp"
#include "trailer.hpp"

namespace ndshm::detail {

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
    process_identity queue_owner() const noexcept
    {
        process_identity p;
        if (const trailer* t = m_queue->get_trailer()) {
            p.pid = __atomic_load_n(&t->creator_pid, __ATOMIC_ACQUIRE);
            p.start = __atomic_load_n(&t->creator_start, __ATOMIC_ACQUIRE);
        }
        return p;
    }

    std::mutex& mutex() noexcept { return m_mutex; }
    /// The cache, by record index. Callers hold mutex().
    std::unordered_map<std::uint32_t, cached>& cache() noexcept { return m_cache; }

    /// The cached mapping of record `i` if it is of `generation` and maps the file `id`; else null (and
    /// a stale entry without a live lease is dropped into `drop`, to be released outside the mutex).
    /// Callers hold mutex().
    cached* find(std::uint32_t i, std::uint32_t generation, file_id id, std::shared_ptr<mapping>& drop) noexcept
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

    /// Makes a lease of record `i` for `c` (a cache entry of this pool). Callers hold mutex().
    std::shared_ptr<pool_lease> lease(const std::shared_ptr<queue_pool>& self, std::uint32_t i, cached& c)
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

    /// The live lease of this pool whose segment is `m`, or null. Callers hold mutex().
    pool_lease* lease_of(const mapping* m) noexcept
    {
        for (auto& e : m_cache) {
            if (e.second.lease != nullptr && e.second.map.get() == m) {
                return e.second.lease;
            }
        }
        return nullptr;
    }

    /// Drops cached mappings whose record moved on to another segment (or left the pool), unless a
    /// lease still holds them: a mapping kept for nothing would keep an unlinked segment's memory.
    /// Callers hold mutex(); the dropped mappings are released with `drop` outside it.
    void prune(std::vector<std::shared_ptr<mapping>>& drop)
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

    /// This process's queue handle is gone: keep no mapping for later (those of live leases stay
    /// until their handles go).
    void detach() noexcept
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

    /// The end of a lease (its last handle went): see the file comment.
    void release(pool_lease& l) noexcept
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
            const process_identity me = this_process();
            const bool mine = __atomic_load_n(&r.state, __ATOMIC_ACQUIRE) == pool_held &&
                              __atomic_load_n(&r.generation, __ATOMIC_RELAXED) == l.generation &&
                              __atomic_load_n(&r.pid, __ATOMIC_RELAXED) == me.pid;
            const bool owned = l.seg->owned();
            trailer* t = l.seg->get_trailer();
            if (owned && mine && !closed() && t != nullptr && l.seg->writable()) {
                // Back to the queue: it belongs to the queue's owner again, for gc too.
                set_trailer_owner(*t, queue_owner());
                l.seg->disown();
                __atomic_store_n(&r.pid, std::uint64_t(0), __ATOMIC_RELAXED);
                __atomic_store_n(&r.state, std::uint32_t(pool_free), __ATOMIC_RELEASE);
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
                __atomic_store_n(&r.generation, l.generation + 1, __ATOMIC_RELAXED);
                __atomic_store_n(&r.pid, std::uint64_t(0), __ATOMIC_RELAXED);
                __atomic_store_n(&r.state, std::uint32_t(pool_empty), __ATOMIC_RELEASE);
            }
            drop = std::move(c.map);
            m_cache.erase(it);
        } catch (...) {
            // std::mutex failing to lock: leave the record; the segment goes with its handles as usual.
        }
    }

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
inline trailer* place_pooled_trailer(mapping& m, std::uint32_t kind, std::size_t data_offset,
                                     std::size_t data_bytes) noexcept
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

/// True if a pooled segment of `bytes` may serve a request for `need` bytes: it fits, and wastes at
/// most half of itself (a 1 GiB segment does not carry 4 KiB arrays).
constexpr bool pool_fits(std::uint64_t bytes, std::uint64_t need) noexcept
{
    return need <= bytes && bytes - need <= bytes / 2;
}

} // namespace ndshm::detail

#endif
