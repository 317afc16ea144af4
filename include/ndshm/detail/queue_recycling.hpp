/// @file detail/queue_recycling.hpp
/// How an array queue hands its pooled segments out (queue_pool.hpp has the pool itself): to a
/// producer, a free segment that fits, with the mapping this process kept from an earlier handoff, or
/// a new segment that joins the pool (array_queue::make, ndshm::share(obj, queue)); to a consumer, the
/// pooled segment it pops, again through a kept mapping where this process has one. Either way the
/// handle holds a lease, through which the segment comes back to the queue when the last handle goes.
#ifndef NDSHM_DETAIL_QUEUE_RECYCLING_HPP
#define NDSHM_DETAIL_QUEUE_RECYCLING_HPP

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "../error.hpp"
#include "../options.hpp"
#include "config.hpp"
#include "npy.hpp"
#include "queue_format.hpp"
#include "queue_pool.hpp"
#include "queue_state.hpp"
#include "segment_impl.hpp"
#include "trailer.hpp"

namespace ndshm::detail {

/// A segment for a producer: a pooled one to reuse, a new pooled one, or a plain new one.
struct queue_acquired {
    std::shared_ptr<mapping> handle; ///< what handles hold: lease-backed for a pooled segment
    mapping* map = nullptr;
    bool fresh = true; ///< a new segment: no header or trailer yet
    std::shared_ptr<pool_lease> lease;
    npy_info previous; ///< the header a reused segment has now
    bool previous_known = false;
};

/// The handouts of one queue's pooled segments in this process.
class queue_recycler {
public:
    queue_recycler(queue_state& q, std::shared_ptr<queue_pool> pool) : m_q(q), m_pool(std::move(pool)) {}
    queue_recycler(const queue_recycler&) = delete;
    queue_recycler& operator=(const queue_recycler&) = delete;

    queue_pool& pool() const noexcept { return *m_pool; }

    /// A segment of at least `bytes` bytes for a producer (see array_queue::make): pooled when the pool
    /// has a free segment that fits, or a record for a new one; a plain new segment otherwise. This
    /// process owns it.
    NDSHM_DECL queue_acquired acquire(std::size_t bytes, const std::string& op);

    /// After a producer wrote the header and the trailer of an acquired segment: the pool record gets
    /// the identity of a new segment, and a new layout number if the header changed (so that consumers
    /// with a mapping of it read it again).
    NDSHM_DECL void finish(queue_acquired& a, const npy_info& info, bool rewritten) noexcept;

    /// Under the queue's lock, for a consumer: the mapping this process kept of pooled record `idx`,
    /// whose segment entry `e` names (its header as of record layout `layout` in `info`), or null if
    /// it has none that is current and valid (the segment is then attached as any other).
    NDSHM_DECL std::shared_ptr<mapping> kept_mapping(std::uint32_t idx, const queue_entry& e, std::uint32_t layout,
                                                     npy_info& info, const std::string& op);

    /// Under the queue's lock, for a consumer that pops pooled record `idx` (entry `e`) through mapping
    /// `m` (`kept`: kept_mapping gave it; else it is cached now): this process holds the record, and the
    /// handle returned holds a lease of it. If that cannot be, the record is forgotten and `m` itself is
    /// the handle: a plain segment from now on.
    NDSHM_DECL std::shared_ptr<mapping> lease_popped(std::uint32_t idx, const queue_entry& e, std::uint32_t layout,
                                                     const std::shared_ptr<mapping>& m, const npy_info& info,
                                                     bool kept) noexcept;

private:
    /// The segment of free record `idx`, which this process now holds, with its mapping (kept, or
    /// attached now and kept), owned by this process. Nothing if it cannot be used: the record is
    /// emptied.
    NDSHM_DECL std::optional<queue_acquired> reuse_segment(std::uint32_t idx, std::uint32_t generation,
                                                           const pooled_segment& seg, const std::string& op);

    queue_state& m_q;
    std::shared_ptr<queue_pool> m_pool;
};

} // namespace ndshm::detail

#if NDSHM_DEFINITIONS
namespace ndshm::detail {

queue_acquired queue_recycler::acquire(std::size_t bytes, const std::string& op)
{
    const auto closed_error = [&] {
        raise<error>(op, m_q.name(), "the queue is closed", "make arrays before close()", errno_code(EPIPE));
    };
    if (m_q.closed()) {
        closed_error();
    }
    const std::size_t n = m_pool->count();
    std::uint32_t idx = static_cast<std::uint32_t>(n);
    bool reuse = false;
    std::uint32_t generation = 0;
    pooled_segment seg; // the free segment to reuse
    std::vector<pooled_segment> evicted;
    {
        queue_state::guard g(m_q, op.c_str(), std::chrono::steady_clock::time_point::max());
        if (m_q.closed()) {
            g.unlock();
            closed_error();
        }
        const process_identity me = this_process();
        idx = m_pool->best_fit(bytes);
        if (idx < n) {
            queue_pool_record& r = m_pool->record(idx);
            if (named(r, seg)) {
                reuse = true;
                generation = r.generation;
                hold_record(r, me);
                __atomic_fetch_add(&m_q.control().reused, std::uint64_t(1), __ATOMIC_RELAXED);
            } else {
                empty_record(r); // nothing usable recorded: forget it
                idx = static_cast<std::uint32_t>(n);
            }
        }
        if (!reuse) {
            idx = m_pool->free_record(evicted);
            if (idx < n) {
                queue_pool_record& r = m_pool->record(idx);
                generation = r.generation;
                r.bytes = 0;
                r.layout = 0;
                std::memset(r.name, 0, sizeof r.name);
                hold_record(r, me);
            }
        }
    }
    for (const auto& e : evicted) {
        m_q.unlink_queued(e.name, e.id, e.created_ns);
    }
    if (reuse) {
        if (auto a = reuse_segment(idx, generation, seg, op)) {
            return std::move(*a);
        }
        // It could not be used (gone, or not what the record says): the record is emptied, and a
        // plain new segment serves this time.
        idx = static_cast<std::uint32_t>(n);
    }
    queue_acquired a;
    std::shared_ptr<mapping> m;
    try {
        m = create_segment(m_q.make_options(), bytes, op);
    } catch (...) {
        if (idx < n) {
            m_pool->let_go(idx, generation);
        }
        throw;
    }
    a.map = m.get();
    a.fresh = true;
    if (idx < n) {
        std::vector<std::shared_ptr<mapping>> drop;
        std::lock_guard<std::mutex> g(m_pool->mutex());
        queue_pool::cached& c = m_pool->keep(idx, generation, std::move(m), drop);
        a.lease = m_pool->lease(m_pool, idx, c);
        a.handle = lease_handle(a.lease);
        __atomic_fetch_add(&m_q.control().pool_created, std::uint64_t(1), __ATOMIC_RELAXED);
    } else {
        a.handle = std::move(m);
    }
    return a;
}

void queue_recycler::finish(queue_acquired& a, const npy_info& info, bool rewritten) noexcept
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

std::shared_ptr<mapping> queue_recycler::kept_mapping(std::uint32_t idx, const queue_entry& e, std::uint32_t layout,
                                                      npy_info& info, const std::string& op)
{
    std::shared_ptr<mapping> drop;
    std::lock_guard<std::mutex> g(m_pool->mutex());
    if (queue_pool::cached* c = m_pool->find(idx, e.pool_generation, file_id{e.dev, e.ino}, drop)) {
        try {
            c->refresh(layout, op);
            info = c->info;
            return c->map;
        } catch (const format_error&) {
            // Read it as a new attach would.
        }
    }
    return nullptr;
}

std::shared_ptr<mapping> queue_recycler::lease_popped(std::uint32_t idx, const queue_entry& e, std::uint32_t layout,
                                                      const std::shared_ptr<mapping>& m, const npy_info& info,
                                                      bool kept) noexcept
{
    std::vector<std::shared_ptr<mapping>> dropped;
    try {
        std::lock_guard<std::mutex> g(m_pool->mutex());
        if (!kept) {
            queue_pool::cached& c = m_pool->keep(idx, e.pool_generation, m, dropped);
            c.layout = layout;
            c.info = info;
            c.info_known = true;
        }
        auto& c = m_pool->cache()[idx];
        hold_record(m_pool->record(idx), this_process());
        return lease_handle(m_pool->lease(m_pool, idx, c));
    } catch (...) {
        m_pool->forget_queued(idx);
        return m;
    }
}

std::optional<queue_acquired> queue_recycler::reuse_segment(std::uint32_t idx, std::uint32_t generation,
                                                            const pooled_segment& seg, const std::string& op)
{
    const std::uint32_t layout = __atomic_load_n(&m_pool->record(idx).layout, __ATOMIC_RELAXED);
    queue_acquired a;
    std::shared_ptr<mapping> drop;
    std::vector<std::shared_ptr<mapping>> dropped;
    try {
        std::unique_lock<std::mutex> g(m_pool->mutex());
        queue_pool::cached* c = m_pool->find(idx, generation, seg.id, drop);
        if (c == nullptr) {
            g.unlock();
            options o = m_q.attach_options();
            o.read_only = false;
            o.populate = false;
            npy_info info;
            std::uint32_t kind = 0;
            auto m = open_npy_segment(o, seg.name, op, info, kind);
            const trailer* t = m->get_trailer();
            if ((kind != kind_array && kind != kind_object) || m->id() != seg.id || t == nullptr ||
                t->created_ns != seg.created_ns) {
                m_pool->let_go(idx, generation);
                return std::nullopt;
            }
            g.lock();
            queue_pool::cached& fresh = m_pool->keep(idx, generation, std::move(m), dropped);
            fresh.layout = layout;
            fresh.info = std::move(info);
            fresh.info_known = true;
            c = &fresh;
        }
        c->refresh(layout, op);
        a.previous = c->info;
        a.previous_known = true;
        a.map = c->map.get();
        a.lease = m_pool->lease(m_pool, idx, *c);
    } catch (...) {
        m_pool->let_go(idx, generation);
        return std::nullopt;
    }
    a.handle = lease_handle(a.lease);
    a.fresh = false;
    take_ownership(*a.map); // the trailer names this process for gc, and the session owns the name
    return a;
}

} // namespace ndshm::detail
#endif // NDSHM_DEFINITIONS

#endif
