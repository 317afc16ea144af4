/// @file detail/queue_impl.hpp
/// The push and pop engine of `ndshm::array_queue` (queue.hpp): what may be pushed, an item's entry
/// put at the tail and taken from the head with its segment's ownership, arrays made in the queue's
/// pool, the queue removed or trimmed; and the creation and checked opening of a queue's segment.
#ifndef NDSHM_DETAIL_QUEUE_IMPL_HPP
#define NDSHM_DETAIL_QUEUE_IMPL_HPP

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "../dtype.hpp"
#include "../error.hpp"
#include "../options.hpp"
#include "array_handle.hpp"
#include "array_handoff.hpp"
#include "config.hpp"
#include "npy.hpp"
#include "object_handle.hpp"
#include "prefault.hpp"
#include "queue_format.hpp"
#include "queue_pool.hpp"
#include "queue_recycling.hpp"
#include "queue_state.hpp"
#include "segment_impl.hpp"
#include "sync.hpp"
#include "trailer.hpp"

namespace ndshm::detail {

/// The state behind array_queue handles of one process: the queue's segment (queue_state), and the
/// queue's recycling pool as this process sees it.
class queue_impl : public queue_state {
public:
    NDSHM_DECL queue_impl(std::shared_ptr<mapping> m, queue_control* ctl, std::size_t capacity, std::size_t pool,
                          const options& opt);
    queue_impl(const queue_impl&) = delete;
    queue_impl& operator=(const queue_impl&) = delete;

    /// The owner's last handle removes the queue, and with it every array still queued or free in the pool.
    NDSHM_DECL ~queue_impl();

    std::size_t pool_records() const noexcept { return m_pool->count(); }

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
        ndshm::dtype type{};
        bool object = false;
        if (!front("front_dtype of queue", type, object) || object) {
            return std::nullopt;
        }
        return type;
    }

    bool front_is_object()
    {
        ndshm::dtype type{};
        bool object = false;
        return front("front_is_object of queue", type, object) && object;
    }

    /// Closes the queue, unlinks every array still queued and every free segment of the pool, and
    /// unlinks the queue's name. Waits for the queue's lock until `deadline`; without it, only the
    /// queue's own name goes. Segments that processes hold stay theirs: they unlink them when done.
    NDSHM_DECL void remove_now(const char* op, std::chrono::steady_clock::time_point deadline);

    /// Unlinks every free segment of the pool now (they come back as new ones when needed).
    NDSHM_DECL std::size_t trim();

    /// A writable array of `dtype_of<T>` and `shape` in a segment of the pool: a free one that fits, with
    /// its mapping in this process kept from an earlier handoff, else a new one.
    template <class T>
    shared_ndarray<T> make(const shape_type& shape, bool fortran)
    {
        static_assert(!std::is_const_v<T>, "make a writable shared_ndarray<T>");
        npy_info info;
        std::shared_ptr<mapping> m = make_segment(dtype_of<T>, sizeof(T), shape, fortran, info);
        return array_access::make<T>(std::move(m), info);
    }

    /// A segment for a producer (see queue_recycler::acquire).
    queue_acquired acquire(std::size_t bytes, const std::string& op) { return m_recycler.acquire(bytes, op); }
    /// After a producer wrote an acquired segment's header and trailer (see queue_recycler::finish).
    void finish(queue_acquired& a, const npy_info& info, bool rewritten) noexcept
    {
        m_recycler.finish(a, info, rewritten);
    }

private:
    /// The array segment of make<T>: published, its handle in the result, its header in `info`.
    NDSHM_DECL std::shared_ptr<mapping> make_segment(ndshm::dtype type, std::size_t item, const shape_type& shape,
                                                     bool fortran, npy_info& info);

    NDSHM_DECL void write_header(mapping& m, const npy_info& info, const std::string& op) const;

    /// Puts `am` at the tail, waiting for room until `deadline`; false if there was none in time.
    bool push_segment(const std::shared_ptr<mapping>& am, std::uint32_t type, std::uint32_t flags,
                      std::chrono::steady_clock::time_point deadline, const char* op)
    {
        queue_control& ctl = control();
        guard g(*this, op, deadline);
        if (!g.locked()) {
            return false;
        }
        std::uint64_t s = 0;
        if (closed() || queue_count(s = __atomic_load_n(&ctl.state, __ATOMIC_ACQUIRE)) >= capacity()) {
            if (!wait_for_room(g, deadline, op, s)) {
                return false;
            }
        }
        // Nothing below throws: the entry, the new owner and the count change together.
        queue_entry& e = ring((queue_head(s) + queue_count(s)) % capacity());
        std::memset(&e, 0, sizeof e);
        std::memcpy(e.name, am->name().data(), am->name().size());
        e.dtype = type;
        e.flags = flags;
        e.dev = am->id().dev;
        e.ino = am->id().ino;
        e.created_ns = am->get_trailer()->created_ns;
        m_pool->mark_queued(am.get(), e);
        // Until someone pops it, the item belongs to the queue's owner: gc keeps it while that process
        // runs and reclaims it with the queue if that process dies.
        set_trailer_owner(*am->get_trailer(), m_pool->queue_owner());
        am->disown();
        __atomic_store_n(&ctl.state, queue_pack(queue_head(s), queue_count(s) + 1), __ATOMIC_RELEASE);
        ++ctl.pushed;
        const bool wake = bump(ctl.not_empty, ctl.pop_waiters);
        g.unlock();
        if (wake) {
            futex_wake_all(&ctl.not_empty);
        }
        return true;
    }

    /// Takes the head item, waiting until `deadline`: its segment's mapping (lease-backed for a pooled
    /// one) and header in `info`, or null if nothing came in time (or the queue is closed and drained).
    std::shared_ptr<mapping> pop_segment(std::chrono::steady_clock::time_point deadline, const char* op, bool object,
                                         ndshm::dtype want, npy_info& info)
    {
        queue_control& ctl = control();
        guard g(*this, op, deadline);
        if (!g.locked()) {
            return {};
        }
        std::uint64_t s = __atomic_load_n(&ctl.state, __ATOMIC_ACQUIRE);
        if (queue_count(s) == 0 && !wait_for_item(g, deadline, s)) {
            return {};
        }
        const queue_entry e = ring(queue_head(s));
        std::string item_name;
        ndshm::dtype type{};
        if (!queue_entry_valid(e, item_name, type)) {
            drop_corrupt_head(g, s, op); // an entry that can never be popped: dropped
        }
        const bool is_object = (e.flags & entry_object) != 0;
        if (is_object != object || (!object && type != want)) {
            raise_other_item(g, op, item_name, is_object, object, type, want); // it stays queued
        }
        // A segment of this queue's pool, as the entry and its record agree.
        const std::size_t n = m_pool->count();
        std::uint32_t layout = 0;
        const std::uint32_t idx = m_pool->queued_record(e, layout);
        std::shared_ptr<mapping> m;
        if (idx < n) {
            m = m_recycler.kept_mapping(idx, e, layout, info, op);
        }
        const bool kept = m != nullptr;
        if (!m) {
            m = attach_queued(g, s, idx, item_name, object, op, info);
        }
        const bool shape_ok = object ? info.type == dtype::uint8 && info.shape.size() == 1 : info.type == type;
        if (!m || !shape_ok || !is_queued(*m, e) || !m->writable()) {
            drop_unexpected(g, s, idx, item_name, object, op);
        }
        const std::shared_ptr<mapping> handle = idx < n ? m_recycler.lease_popped(idx, e, layout, m, info, kept) : m;
        take_ownership(*m); // the trailer names this process for gc, and the session owns the name
        ++ctl.popped;
        advance_head(g, s);
        if (populate() && !kept) {
            // Every page mapped now (as MAP_POPULATE would), so that reading the item takes no page fault.
            prefault(m->base(), m->size(), false);
        }
        return handle;
    }

    /// push_segment finding the queue closed or full (state `s`): waits for room until `deadline` (with
    /// `g`'s lock again) and sets `s` to the state that has room; false if there was none in time.
    /// @throws error if the queue is closed
    NDSHM_DECL bool wait_for_room(guard& g, std::chrono::steady_clock::time_point deadline, const char* op,
                                  std::uint64_t& s);

    /// pop_segment finding the queue empty: waits for an item until `deadline` (with `g`'s lock again)
    /// and sets `s` to the state that has one; false if none came in time or the queue is closed.
    NDSHM_DECL bool wait_for_item(guard& g, std::chrono::steady_clock::time_point deadline, std::uint64_t& s);

    /// The head entry of state `s` is not valid: it is dropped, and format_error thrown.
    [[noreturn, gnu::cold]] NDSHM_DECL void drop_corrupt_head(guard& g, std::uint64_t s, const char* op);

    /// The head item `item_name` (`is_object`, else an array of `type`) is not what the pop asked for
    /// (`object`, else an array of `want`): it stays queued, and error or dtype_mismatch is thrown.
    [[noreturn, gnu::cold]] NDSHM_DECL void raise_other_item(guard& g, const char* op, const std::string& item_name,
                                                             bool is_object, bool object, ndshm::dtype type,
                                                             ndshm::dtype want);

    /// Attaches the queued segment `item_name` of the head entry (state `s`, pool record `idx`, or the
    /// record count), its header in `info`; null if it is not of the kind popped. If it is gone or not
    /// valid, the entry is dropped (and its record forgotten) and the error thrown on.
    NDSHM_DECL std::shared_ptr<mapping> attach_queued(guard& g, std::uint64_t s, std::uint32_t idx,
                                                      const std::string& item_name, bool object, const char* op,
                                                      npy_info& info);

    /// The head item's segment is not the one the queue recorded: the entry is dropped (and its record
    /// forgotten), and format_error thrown.
    [[noreturn, gnu::cold]] NDSHM_DECL void drop_unexpected(guard& g, std::uint64_t s, std::uint32_t idx,
                                                            const std::string& item_name, bool object, const char* op);

    /// True if `m` maps the segment that entry `e` was made for (not another one created later under its
    /// name).
    static bool is_queued(const mapping& m, const queue_entry& e) noexcept
    {
        const trailer* t = m.get_trailer();
        return t != nullptr && m.id() == file_id{e.dev, e.ino} && t->created_ns == e.created_ns;
    }

    NDSHM_DECL void check_pushable(const std::shared_ptr<mapping>& am, bool whole, std::uint32_t kind,
                                   const char* op) const;

    std::shared_ptr<queue_pool> m_pool;
    queue_recycler m_recycler;
};

/// Creates the segment of an empty queue for `capacity` items whose pool keeps up to `recycled`
/// segments (array_queue::create).
NDSHM_DECL std::shared_ptr<queue_impl> create_queue(std::size_t capacity, std::size_t recycled, const options& opt);

/// Opens the queue `name`, checking its header and control block (array_queue::attach).
NDSHM_DECL std::shared_ptr<queue_impl> open_queue(const std::string& name, const options& opt);

} // namespace ndshm::detail

#if NDSHM_DEFINITIONS
namespace ndshm::detail {

queue_impl::queue_impl(std::shared_ptr<mapping> m, queue_control* ctl, std::size_t capacity, std::size_t pool,
                       const options& opt)
    : queue_state(std::move(m), ctl, capacity, opt),
      m_pool(std::make_shared<queue_pool>(queue_map(), ctl, reinterpret_cast<queue_pool_record*>(&ring(0) + capacity),
                                          pool)),
      m_recycler(*this, m_pool)
{
}

queue_impl::~queue_impl()
{
    try {
        if (queue_map()->owned()) {
            // A destructor waits a bounded time for a lock that a stopped process may hold.
            remove_now("remove queue", std::chrono::steady_clock::now() + std::chrono::seconds(1));
        }
    } catch (...) {
        // The mapping still unlinks the queue's name; arrays left queued are reclaimed by `ndshm gc`
        // once this process has exited (their trailers name it as their owner).
    }
    m_pool->detach();
}

void queue_impl::remove_now(const char* op, std::chrono::steady_clock::time_point deadline)
{
    queue_control& ctl = control();
    guard g(*this, op, deadline);
    if (!g.locked()) {
        __atomic_store_n(&ctl.closed, 1u, __ATOMIC_RELEASE);
        wake_everyone();
        queue_map()->disown();
        (void)unlink_if_same(queue_map()->loc(), queue_map()->id());
        raise<error>(op, name(),
                     "the queue's lock stayed taken (a stopped process holds it), so the arrays still queued "
                     "were not removed; the queue's name was",
                     "run `ndshm gc` once the process that holds it has ended", errno_code(ETIMEDOUT));
    }
    __atomic_store_n(&ctl.closed, 1u, __ATOMIC_RELEASE);
    const std::uint64_t s = __atomic_load_n(&ctl.state, __ATOMIC_ACQUIRE);
    for (std::uint64_t i = 0; i < queue_count(s); ++i) {
        std::string array_name;
        ndshm::dtype type{};
        const queue_entry& e = ring((queue_head(s) + i) % capacity());
        if (queue_entry_valid(e, array_name, type)) {
            unlink_queued(array_name, file_id{e.dev, e.ino}, e.created_ns);
        }
    }
    __atomic_store_n(&ctl.state, queue_pack(0, 0), __ATOMIC_RELEASE);
    const std::vector<pooled_segment> free_ones = m_pool->take_records(true);
    release_everyone(g);
    for (const auto& f : free_ones) {
        unlink_queued(f.name, f.id, f.created_ns);
    }
    m_pool->prune_cache();
    queue_map()->disown();
    (void)unlink_if_same(queue_map()->loc(), queue_map()->id());
}

std::size_t queue_impl::trim()
{
    guard g(*this, "trim queue", std::chrono::steady_clock::time_point::max());
    const std::vector<pooled_segment> free_ones = m_pool->take_records(false);
    g.unlock();
    for (const auto& f : free_ones) {
        unlink_queued(f.name, f.id, f.created_ns);
    }
    m_pool->prune_cache();
    return free_ones.size();
}

std::shared_ptr<mapping> queue_impl::make_segment(ndshm::dtype type, std::size_t item, const shape_type& shape,
                                                  bool fortran, npy_info& info)
{
    const std::string op = "make";
    info.type = type;
    info.shape = shape;
    info.fortran_order = fortran;
    info.data_offset = 4096;
    const std::size_t limit = static_cast<std::size_t>(std::numeric_limits<off_t>::max()) / 2;
    if (shape.size() > npy_max_ndim) {
        raise<error>(op, name(), std::to_string(shape.size()) + " dimensions requested", "use at most 64",
                     make_error_code(errc::invalid_argument));
    }
    if (!checked_nbytes(shape, item, info.size, info.nbytes) || info.nbytes > limit) {
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
    return std::move(a.handle);
}

void queue_impl::write_header(mapping& m, const npy_info& info, const std::string& op) const
{
    if (!write_npy_header(m.base(), info.data_offset, info.type, info.shape, info.fortran_order)) {
        raise<error>(op, name(), "the .npy header does not fit before the data", "use fewer dimensions",
                     make_error_code(errc::invalid_argument));
    }
}

bool queue_impl::wait_for_room(guard& g, std::chrono::steady_clock::time_point deadline, const char* op,
                               std::uint64_t& s)
{
    queue_control& ctl = control();
    for (;;) {
        if (closed()) {
            g.unlock();
            raise<error>(op, name(), "the queue is closed", "push before close(); the item stays with the caller",
                         errno_code(EPIPE));
        }
        s = __atomic_load_n(&ctl.state, __ATOMIC_ACQUIRE);
        if (queue_count(s) < capacity()) {
            return true;
        }
        if (!g.wait(ctl.not_full, ctl.push_waiters, deadline)) {
            return false;
        }
    }
}

bool queue_impl::wait_for_item(guard& g, std::chrono::steady_clock::time_point deadline, std::uint64_t& s)
{
    queue_control& ctl = control();
    for (;;) {
        if (closed() || !g.wait(ctl.not_empty, ctl.pop_waiters, deadline)) {
            return false;
        }
        s = __atomic_load_n(&ctl.state, __ATOMIC_ACQUIRE);
        if (queue_count(s) > 0) {
            return true;
        }
    }
}

void queue_impl::drop_corrupt_head(guard& g, std::uint64_t s, const char* op)
{
    advance_head(g, s);
    raise<format_error>(op, name(),
                        "the entry at the head of the queue is corrupt (no valid segment name "
                        "or dtype); it was dropped",
                        "something other than ndshm wrote into the queue's segment",
                        make_error_code(errc::corrupt_control));
}

void queue_impl::raise_other_item(guard& g, const char* op, const std::string& item_name, bool is_object, bool object,
                                  ndshm::dtype type, ndshm::dtype want)
{
    g.unlock();
    if (is_object != object) {
        raise<error>(op, name(),
                     std::string("the next item, '") + item_name + "', is " +
                         (is_object ? "a composite object" : std::string("an array of ") + dtype_name(type)) +
                         "; it stays queued",
                     is_object ? "pop it with pop_object()" : "pop it with pop<T>()",
                     make_error_code(errc::wrong_kind));
    }
    raise<dtype_mismatch>(op, name(),
                          std::string("the next array, '") + item_name + "', holds " + dtype_name(type) + ", not " +
                              dtype_name(want) + " as requested; it stays queued",
                          std::string("pop it with the element type for ") + dtype_name(type) +
                              " (front_dtype() tells the type of the next array)",
                          make_error_code(errc::dtype_mismatch));
}

std::shared_ptr<mapping> queue_impl::attach_queued(guard& g, std::uint64_t s, std::uint32_t idx,
                                                   const std::string& item_name, bool object, const char* op,
                                                   npy_info& info)
{
    std::shared_ptr<mapping> m;
    try {
        std::uint32_t kind = 0;
        m = open_npy_segment(attach_options(), item_name, op, info, kind);
        if (kind != (object ? kind_object : kind_array)) {
            m.reset();
        }
    } catch (const not_found&) {
        m_pool->forget_queued(idx);
        advance_head(g, s); // it cannot come back: drop it so that the queue moves on
        throw;
    } catch (const format_error&) {
        m_pool->forget_queued(idx);
        advance_head(g, s);
        throw;
    }
    return m;
}

void queue_impl::drop_unexpected(guard& g, std::uint64_t s, std::uint32_t idx, const std::string& item_name,
                                 bool object, const char* op)
{
    m_pool->forget_queued(idx);
    advance_head(g, s);
    raise<format_error>(op, name(),
                        "the queued segment '" + item_name + "' is not the ndshm " + (object ? "object" : "array") +
                            " the queue recorded (another file has its name now, or its kind, dtype or "
                            "trailer differ); it was dropped from the queue, and the file left to whoever "
                            "made it",
                        "something replaced the segment while it was queued", make_error_code(errc::wrong_kind));
}

void queue_impl::check_pushable(const std::shared_ptr<mapping>& am, bool whole, std::uint32_t kind,
                                const char* op) const
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
    if (am->loc().dir != queue_map()->loc().dir) {
        refuse("it lives in another backend ('" + am->loc().path() + "') than the queue ('" +
                   queue_map()->loc().path() + "')",
               "create it with the same options::directory (or NDSHM_DIR) as the queue");
    }
}

std::shared_ptr<queue_impl> create_queue(std::size_t capacity, std::size_t recycled, const options& opt)
{
    const std::string op = "create queue";
    if (capacity == 0 || capacity > queue_max_capacity) {
        raise<error>(op, opt.name, "capacity " + std::to_string(capacity) + " is out of range",
                     "pass a capacity from 1 to " + std::to_string(queue_max_capacity), errno_code(EINVAL));
    }
    if (recycled > queue_max_pool) {
        raise<error>(op, opt.name, "a pool of " + std::to_string(recycled) + " segments is too large",
                     "keep at most " + std::to_string(queue_max_pool) + " segments for reuse", errno_code(EINVAL));
    }
    if (opt.read_only) {
        raise<error>(op, opt.name, "options::read_only is set, but a queue is written by every user",
                     "leave options::read_only false", errno_code(EINVAL));
    }
    npy_info info;
    auto m = create_array_segment(opt, dtype::uint8, {queue_data_bytes(capacity, recycled)}, false, op, info);
    m->get_trailer()->kind = kind_queue;
    auto* ctl = ::new (m->base() + info.data_offset) queue_control{};
    std::memcpy(ctl->magic, queue_magic, sizeof ctl->magic);
    ctl->version = queue_version;
    ctl->entry_size = sizeof(queue_entry);
    ctl->record_size = sizeof(queue_pool_record);
    ctl->capacity = capacity;
    ctl->pool_records = static_cast<std::uint32_t>(recycled);
    init_lock(&ctl->lock);
    m->publish();
    return std::make_shared<queue_impl>(std::move(m), ctl, capacity, recycled, opt);
}

std::shared_ptr<queue_impl> open_queue(const std::string& name, const options& opt)
{
    const std::string op = "open queue";
    if (opt.read_only) {
        raise<error>(op, name, "options::read_only is set, but using a queue writes to it",
                     "leave options::read_only false", errno_code(EINVAL));
    }
    npy_info info;
    std::uint32_t kind = 0;
    auto m = open_npy_segment(opt, name, op, info, kind);
    if (kind != kind_queue) {
        raise<format_error>(op, name,
                            kind == 0 ? "the segment is not an ndshm segment (no trailer)"
                                      : "the segment holds an ndshm " +
                                            std::string(kind == kind_array    ? "array"
                                                        : kind == kind_object ? "object"
                                                                              : "segment") +
                                            ", not a queue",
                            "check the name; array_queue::create makes queues", make_error_code(errc::wrong_kind));
    }
    const auto corrupt = [&](const std::string& why) {
        raise<format_error>(op, name, "corrupt queue: " + why, "remove it and create a new queue",
                            make_error_code(errc::corrupt_control));
    };
    if (info.type != dtype::uint8 || info.shape.size() != 1 || info.nbytes < sizeof(queue_control)) {
        corrupt("its header does not describe a queue");
    }
    auto* ctl = reinterpret_cast<queue_control*>(m->base() + info.data_offset);
    if (std::memcmp(ctl->magic, queue_magic, sizeof ctl->magic) != 0 || ctl->version != queue_version) {
        corrupt("unknown queue format (magic or version " + std::to_string(ctl->version) +
                "; this ndshm reads version " + std::to_string(queue_version) + ")");
    }
    const std::uint64_t capacity = ctl->capacity;
    const std::uint64_t pool = ctl->pool_records;
    if (ctl->entry_size != sizeof(queue_entry) || ctl->record_size != sizeof(queue_pool_record) || capacity == 0 ||
        capacity > queue_max_capacity || pool > queue_max_pool ||
        queue_data_bytes(static_cast<std::size_t>(capacity), static_cast<std::size_t>(pool)) > info.nbytes) {
        corrupt("its capacity (" + std::to_string(capacity) + ") and pool (" + std::to_string(pool) +
                ") do not fit its " + std::to_string(info.nbytes) + " bytes");
    }
    return std::make_shared<queue_impl>(std::move(m), ctl, static_cast<std::size_t>(capacity),
                                        static_cast<std::size_t>(pool), opt);
}

} // namespace ndshm::detail
#endif // NDSHM_DEFINITIONS

#endif
