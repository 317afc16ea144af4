/// @file detail/channel_core.hpp
/// The part of `ndshm::channel<T>` that does not depend on T, compiled once: the segment's control
/// block, slot records and ring (detail/channel_format.hpp), creating and checking them, loaning,
/// publishing, receiving and reclaiming slots by index, and the waits. channel<T> (channel.hpp) turns
/// indices into typed slots.
#ifndef NDSHM_DETAIL_CHANNEL_CORE_HPP
#define NDSHM_DETAIL_CHANNEL_CORE_HPP

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <utility>

#include "../dtype.hpp"
#include "../error.hpp"
#include "../options.hpp"
#include "array_handle.hpp"
#include "array_index.hpp"
#include "array_segment.hpp"
#include "channel_format.hpp"
#include "config.hpp"
#include "liveness.hpp"
#include "npy.hpp"
#include "segment_impl.hpp"
#include "sync.hpp"
#include "trailer.hpp"
#include "wait.hpp"

namespace ndshm::detail {

[[noreturn]] NDSHM_DECL void raise_empty_channel(const char* op);

/// The error of slot<T>::index() on an empty slot.
[[noreturn, gnu::cold]] NDSHM_DECL void raise_empty_slot();

/// The error of channel<T>::publish, of channel `name`, given a slot that is empty or not its loan.
[[noreturn, gnu::cold]] NDSHM_DECL void raise_foreign_slot(const std::string& name);

/// One process's handle on a channel's segment, by slot index. Copies share the mapping; a moved-from
/// core is empty, exactly like a default-constructed one (spin limits included).
class channel_core {
public:
    /// "No slot": a time-out, or a closed and drained channel.
    static constexpr std::size_t npos = static_cast<std::size_t>(-1);

    channel_core() = default;
    channel_core(const channel_core&) = default;
    channel_core& operator=(const channel_core&) = default;
    channel_core(channel_core&& o) noexcept { take_from(o); }
    channel_core& operator=(channel_core&& o) noexcept
    {
        if (this != &o) {
            take_from(o);
        }
        return *this;
    }
    ~channel_core() = default;

    /// Creates a channel of `slots` slots of `slot_shape`, elements of type `t`, every page faulted in.
    NDSHM_DECL static channel_core create(dtype t, const shape_type& slot_shape, std::size_t slots, const options& opt);

    /// Attaches the channel `name`, whose elements must be of type `t` (pages are mapped in up front).
    NDSHM_DECL static channel_core attach(dtype t, const std::string& name, const options& opt);

    const std::string& name() const noexcept
    {
        static const std::string none;
        return m_map ? m_map->name() : none;
    }
    std::size_t slots() const noexcept { return m_slots; }
    const shape_type& slot_shape() const noexcept { return m_slot_shape; }
    bool empty() const noexcept { return !m_map; }
    NDSHM_DECL void clear() noexcept;

    /// Throws the empty-handle error naming `op` if there is no channel.
    void live(const char* op) const
    {
        if (!m_map) {
            raise_empty_channel(op);
        }
    }

    /// Loans a free slot by `deadline` (time_point::max(): none; now or earlier: a try): its index,
    /// or npos on time-out. A loan that finds no free slot checks, at growing intervals (at once for a
    /// try, then 1 ms to 50 ms), for slots whose holder died, and takes them back.
    std::size_t loan(std::chrono::steady_clock::time_point deadline)
    {
        live("loan");
        const std::string op = "loan";
        held_lock lock(m_ctl->producer_lock, lock_deadline(deadline), producers(op));
        if (!lock.locked()) {
            return npos;
        }
        check_open("loan");
        const std::uint32_t seen = __atomic_load_n(&m_ctl->freed, __ATOMIC_ACQUIRE);
        const std::size_t i = find_free();
        if (i < m_slots) {
            take(i, slot_loaned);
            m_next = (i + 1) % m_slots;
            return i;
        }
        return loan_wait(lock, seen, deadline);
    }

    /// True if `rec` and `freed` are a loan's record and event word in this channel.
    bool owns(const slot_record* rec, const std::uint32_t* freed) const noexcept
    {
        return m_ctl != nullptr && rec != nullptr && freed == &m_ctl->freed && rec >= m_recs && rec < m_recs + m_slots;
    }

    /// Publishes the loaned slot `i`: it goes to the next receive, in order.
    void publish(std::size_t i)
    {
        const std::string op = "publish";
        {
            held_lock lock(m_ctl->producer_lock, std::chrono::steady_clock::time_point::max(), producers(op));
            auto& rec = m_recs[i];
            const std::uint64_t n = __atomic_load_n(&m_ctl->tail, __ATOMIC_RELAXED);
            __atomic_store_n(&m_ring[n % m_slots], static_cast<std::uint32_t>(i), __ATOMIC_RELAXED);
            __atomic_store_n(&rec.seq, n, __ATOMIC_RELAXED);
            __atomic_store_n(&rec.pid, std::uint64_t(0), __ATOMIC_RELAXED);
            __atomic_store_n(&rec.state, std::uint32_t(slot_ready), __ATOMIC_RELEASE);
            __atomic_store_n(&m_ctl->tail, n + 1, __ATOMIC_RELEASE);
            __atomic_store_n(&m_ctl->published, __atomic_load_n(&m_ctl->published, __ATOMIC_RELAXED) + 1,
                             __ATOMIC_RELAXED);
        }
        event_signal(m_ctl->posted);
    }

    /// Receives the oldest published slot by `deadline`, as loan: its index, or npos on time-out or
    /// once the channel is closed and drained.
    std::size_t receive(std::chrono::steady_clock::time_point deadline)
    {
        live("receive");
        if (published_now()) {
            const std::string op = "receive";
            held_lock lock(m_ctl->consumer_lock, lock_deadline(deadline), consumers(op));
            if (!lock.locked()) {
                return npos;
            }
            const std::uint64_t h = __atomic_load_n(&m_ctl->head, __ATOMIC_RELAXED);
            if (h < __atomic_load_n(&m_ctl->tail, __ATOMIC_ACQUIRE)) {
                return take_published(h);
            }
        }
        return receive_wait(deadline); // nothing published yet, or another consumer took it
    }

    /// Closes the channel: loans fail from now on, and receivers wake. Never waits.
    NDSHM_DECL void close();
    bool closed() const noexcept { return m_ctl != nullptr && closed_now(); }
    std::uint64_t reclaimed() const noexcept
    {
        return m_ctl != nullptr ? __atomic_load_n(&m_ctl->reclaimed, __ATOMIC_ACQUIRE) : 0;
    }
    std::uint64_t published() const noexcept
    {
        return m_ctl != nullptr ? __atomic_load_n(&m_ctl->published, __ATOMIC_ACQUIRE) : 0;
    }

    std::chrono::nanoseconds spin_limit() const noexcept { return m_receive_spin.limit(); }
    void set_spin_limit(std::chrono::nanoseconds limit) noexcept
    {
        m_receive_spin.set_limit(limit);
        m_loan_spin.set_limit(limit);
    }

    void persist() noexcept
    {
        if (m_map) {
            m_map->persist();
        }
    }

    /// Slot `i` as an array: its place in the mapping, shape and size.
    npy_info slot_info(dtype t, std::size_t i) const
    {
        npy_info info;
        info.type = t;
        info.shape = m_slot_shape;
        info.size = m_slot_elems;
        info.nbytes = m_slot_bytes;
        info.data_offset = m_data_offset + i * m_slot_bytes;
        return info;
    }
    const std::shared_ptr<mapping>& map() const noexcept { return m_map; }
    slot_record* record(std::size_t i) const noexcept { return &m_recs[i]; }
    std::uint32_t* freed_word() const noexcept { return &m_ctl->freed; }

private:
    NDSHM_DECL channel_core(std::shared_ptr<mapping> m, const npy_info& info, shape_type slot_shape,
                            std::size_t ctl_off);

    NDSHM_DECL void take_from(channel_core& o) noexcept;

    /// loan() finding no free slot, with the producers' lock `first` held and the event word `freed`
    /// seen as `seen` under it: lets the lock go, waits (taking slots of dead holders back, see loan)
    /// and tries again until `deadline`.
    NDSHM_DECL std::size_t loan_wait(held_lock& first, std::uint32_t seen,
                                     std::chrono::steady_clock::time_point deadline);

    /// receive() finding nothing it could take at once: waits and tries again until `deadline`.
    NDSHM_DECL std::size_t receive_wait(std::chrono::steady_clock::time_point deadline);

    lock_context producers(const std::string& op) const noexcept { return {op, name(), "the channel's producer lock"}; }
    lock_context consumers(const std::string& op) const noexcept { return {op, name(), "the channel's consumer lock"}; }

    bool closed_now() const noexcept { return __atomic_load_n(&m_ctl->closed, __ATOMIC_ACQUIRE) != 0; }
    bool published_now() const noexcept
    {
        return __atomic_load_n(&m_ctl->head, __ATOMIC_RELAXED) < __atomic_load_n(&m_ctl->tail, __ATOMIC_ACQUIRE);
    }

    void check_open(const char* op) const
    {
        if (closed_now()) {
            raise_closed(op);
        }
    }
    /// check_open's error.
    [[noreturn, gnu::cold]] NDSHM_DECL void raise_closed(const char* op) const;

    /// A free slot, looking from the one after the last loan (so slots are used in turn); m_slots if none.
    std::size_t find_free() const noexcept
    {
        for (std::size_t k = 0; k < m_slots; ++k) {
            const std::size_t i = (m_next + k) % m_slots;
            if (__atomic_load_n(&m_recs[i].state, __ATOMIC_ACQUIRE) == slot_free) {
                return i;
            }
        }
        return m_slots;
    }
    bool any_free() const noexcept { return find_free() < m_slots; }

    // Called with a lock held: the holder first, then the state (see slot_record).
    void take(std::size_t i, std::uint32_t state) noexcept
    {
        auto& rec = m_recs[i];
        const process_identity me = this_process();
        __atomic_store_n(&rec.pid, me.pid, __ATOMIC_RELAXED);
        __atomic_store_n(&rec.start, me.start, __ATOMIC_RELAXED);
        __atomic_store_n(&rec.state, state, __ATOMIC_RELEASE);
    }

    // With the consumers' lock held and publication h waiting: checks it and takes it.
    std::size_t take_published(std::uint64_t h)
    {
        const std::uint32_t i = __atomic_load_n(&m_ring[h % m_slots], __ATOMIC_RELAXED);
        if (i >= m_slots || __atomic_load_n(&m_recs[i].state, __ATOMIC_ACQUIRE) != slot_ready ||
            __atomic_load_n(&m_recs[i].seq, __ATOMIC_RELAXED) != h) {
            raise_corrupt_ring(i, h);
        }
        __atomic_store_n(&m_ctl->head, h + 1, __ATOMIC_RELEASE);
        __atomic_store_n(&m_ctl->received, __atomic_load_n(&m_ctl->received, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
        take(i, slot_received);
        return i;
    }

    /// take_published finding that the ring names slot `i` for publication `h`, not that published slot.
    [[noreturn, gnu::cold]] NDSHM_DECL void raise_corrupt_ring(std::uint32_t i, std::uint64_t h) const;

    // Called with the producers' lock held, when no slot is free. Takes the consumers' lock too (by
    // `deadline`; without it, nothing is reclaimed this time) and frees, by the positive-evidence rule of
    // detail/liveness.hpp, slots loaned or received by processes that are gone (a holder that cannot be
    // judged keeps its slots; a record naming no possible process has no holder to wait for), and slots
    // left ready outside [head, tail) by a process killed in the middle of publishing or receiving.
    NDSHM_DECL std::size_t reclaim_dead(std::chrono::steady_clock::time_point deadline);

    std::shared_ptr<mapping> m_map;
    channel_control* m_ctl = nullptr;
    slot_record* m_recs = nullptr;
    std::uint32_t* m_ring = nullptr;
    shape_type m_slot_shape;
    std::size_t m_slots = 0;
    std::size_t m_slot_elems = 0;
    std::size_t m_slot_bytes = 0;
    std::size_t m_data_offset = 0;
    std::size_t m_next = 0; // where the next loan starts looking
    spin_policy m_receive_spin;
    spin_policy m_loan_spin;
};

} // namespace ndshm::detail

#if NDSHM_DEFINITIONS
namespace ndshm::detail {

void raise_empty_channel(const char* op)
{
    raise<error>(op, "", "the channel handle is empty (default-constructed, moved from or reset)",
                 "create a channel with channel<T>::create or attach one with channel<T>::attach",
                 make_error_code(errc::invalid_argument));
}

void raise_empty_slot()
{
    raise<error>("index", "", "the slot is empty (moved from, released, published, or a timed-out loan)",
                 "ask a slot that loan() or receive() returned", make_error_code(errc::invalid_argument));
}

void raise_foreign_slot(const std::string& name)
{
    raise<error>("publish", name, "the slot is empty or was not loaned from this channel",
                 "publish a slot returned by this channel's loan()", make_error_code(errc::invalid_argument));
}

channel_core channel_core::create(dtype t, const shape_type& slot_shape, std::size_t slots, const options& opt)
{
    const std::string op = "create channel";
    if (slots == 0 || slots > channel_max_slots) {
        raise<error>(op, opt.name, "a channel needs 1 to 65536 slots", "pass a slot count in that range",
                     make_error_code(errc::invalid_argument));
    }
    shape_type shape{slots};
    shape.insert(shape.end(), slot_shape.begin(), slot_shape.end());
    npy_info info;
    info.type = t;
    info.shape = shape;
    info.data_offset = data_offset_for(opt, op);
    std::size_t slot_elems = 0, slot_bytes = 0;
    if (!checked_nbytes(slot_shape, itemsize(t), slot_elems, slot_bytes) ||
        !checked_nbytes(shape, itemsize(t), info.size, info.nbytes)) {
        raise<out_of_space>(op, opt.name, "the channel's size overflows", "use smaller slots", errno_code(EOVERFLOW));
    }
    const std::size_t toff = trailer_offset(info.data_offset + info.nbytes);
    const std::size_t ctl_off = toff + sizeof(trailer);
    options o = opt;
    o.populate = true;
    auto m = create_segment(o, ctl_off + channel_extra_bytes(slots), op);
    if (!write_npy_header(m->base(), info.data_offset, info.type, shape, false)) {
        raise<error>(op, m->name(), "the .npy header does not fit before the data", "use fewer dimensions",
                     make_error_code(errc::invalid_argument));
    }
    write_trailer(*m, toff, kind_channel, info.data_offset, info.nbytes);
    auto* ctl = reinterpret_cast<channel_control*>(m->base() + ctl_off);
    std::memcpy(ctl->magic, channel_magic, sizeof ctl->magic);
    ctl->slots = static_cast<std::uint32_t>(slots);
    ctl->slot_bytes = slot_bytes;
    init_lock(&ctl->producer_lock);
    init_lock(&ctl->consumer_lock);
    // Touch every slot page so that no first write pays a fault (MAP_POPULATE maps, this dirties).
    std::memset(m->base() + info.data_offset, 0, info.nbytes);
    m->publish();
    return channel_core(std::move(m), info, slot_shape, ctl_off);
}

channel_core channel_core::attach(dtype t, const std::string& name, const options& opt)
{
    const std::string op = "attach channel";
    options o = opt;
    o.populate = true;
    o.read_only = false;
    npy_info info;
    std::uint32_t kind = 0;
    auto m = open_npy_segment(o, name, op, info, kind);
    if (kind != kind_channel) {
        raise<format_error>(op, name, "the segment is not a channel",
                            "attach arrays with shared_ndarray<T>::attach, objects with ndshm::load",
                            make_error_code(errc::wrong_kind));
    }
    if (info.type != t) {
        raise<dtype_mismatch>(
            op, name, std::string("the channel carries ") + dtype_name(info.type) + ", not " + dtype_name(t),
            "attach it as channel<T> with the matching element type", make_error_code(errc::dtype_mismatch));
    }
    const std::size_t ctl_off = trailer_offset(info.data_offset + info.nbytes) + sizeof(trailer);
    const auto bad = [&](const std::string& why) {
        raise<format_error>(op, name, "corrupt channel: " + why, "recreate the channel",
                            make_error_code(errc::corrupt_control));
    };
    if (info.shape.empty() || info.fortran_order || ctl_off > m->size() ||
        m->size() - ctl_off < sizeof(channel_control)) {
        bad("no control block");
    }
    const auto* ctl = reinterpret_cast<const channel_control*>(m->base() + ctl_off);
    const std::size_t slots = info.shape[0];
    if (std::memcmp(ctl->magic, channel_magic, sizeof ctl->magic) != 0) {
        bad("unknown control block (magic), perhaps made by another ndshm version");
    }
    if (ctl->slots != slots || slots == 0 || slots > channel_max_slots || ctl->slot_bytes * slots != info.nbytes ||
        m->size() - ctl_off < channel_extra_bytes(slots)) {
        bad("the control block disagrees with the header");
    }
    const shape_type slot_shape(info.shape.begin() + 1, info.shape.end());
    return channel_core(std::move(m), info, slot_shape, ctl_off);
}

void channel_core::clear() noexcept
{
    m_map.reset();
    m_ctl = nullptr;
    m_recs = nullptr;
    m_ring = nullptr;
    m_slot_shape = shape_type{};
    m_slots = m_slot_elems = m_slot_bytes = m_data_offset = m_next = 0;
    // An empty handle is a default-constructed one in every respect, spin limit included.
    m_receive_spin = spin_policy();
    m_loan_spin = spin_policy();
}

std::size_t channel_core::loan_wait(held_lock& first, std::uint32_t seen,
                                    std::chrono::steady_clock::time_point deadline)
{
    const std::string op = "loan";
    using clock = std::chrono::steady_clock;
    // When to look for slots of dead holders next: at once for a try, else after 1 ms of waiting.
    clock::time_point next_check{};
    auto interval = std::chrono::milliseconds(1);
    // With the producers' lock held and no slot free: true if it was time to look for slots of dead
    // holders and some were taken back.
    const auto reclaimed = [&] {
        const auto now = clock::now();
        if (next_check == clock::time_point{}) {
            next_check = deadline <= now ? now : now + interval;
        }
        if (now >= next_check) {
            next_check = now + interval;
            interval = std::min(interval * 2, std::chrono::milliseconds(50));
            return reclaim_dead(deadline) > 0;
        }
        return false;
    };
    bool again = reclaimed();
    first.unlock();
    for (;;) {
        if (!again) {
            const auto now = clock::now();
            if (now >= deadline) {
                return npos;
            }
            const auto until = std::min(deadline, next_check);
            const auto freed = [&] { return __atomic_load_n(&m_ctl->freed, __ATOMIC_ACQUIRE) != seen || closed_now(); };
            if (!m_loan_spin.spin(freed, until)) {
                const std::uint32_t prepared = event_prepare(m_ctl->freed);
                if (!any_free() && !closed_now()) {
                    const auto slept = clock::now();
                    event_wait(m_ctl->freed, prepared, until);
                    m_loan_spin.slept(clock::now() - slept);
                }
            }
        }
        held_lock lock(m_ctl->producer_lock, lock_deadline(deadline), producers(op));
        if (!lock.locked()) {
            return npos;
        }
        check_open("loan");
        seen = __atomic_load_n(&m_ctl->freed, __ATOMIC_ACQUIRE);
        const std::size_t i = find_free();
        if (i < m_slots) {
            take(i, slot_loaned);
            m_next = (i + 1) % m_slots;
            return i;
        }
        again = reclaimed();
    }
}

std::size_t channel_core::receive_wait(std::chrono::steady_clock::time_point deadline)
{
    const std::string op = "receive";
    using clock = std::chrono::steady_clock;
    clock::time_point waiting{};
    for (;;) {
        if (published_now()) {
            held_lock lock(m_ctl->consumer_lock, lock_deadline(deadline), consumers(op));
            if (!lock.locked()) {
                return npos;
            }
            const std::uint64_t h = __atomic_load_n(&m_ctl->head, __ATOMIC_RELAXED);
            if (h < __atomic_load_n(&m_ctl->tail, __ATOMIC_ACQUIRE)) {
                return take_published(h);
            }
            continue; // another consumer took it
        }
        if (closed_now()) {
            if (published_now()) {
                continue; // published before the close
            }
            return npos;
        }
        const auto now = clock::now();
        if (now >= deadline) {
            return npos;
        }
        if (waiting == clock::time_point{}) {
            waiting = now;
        }
        if (m_receive_spin.spin([&] { return published_now() || closed_now(); }, deadline)) {
            continue;
        }
        const std::uint32_t prepared = event_prepare(m_ctl->posted);
        if (published_now() || closed_now()) {
            continue;
        }
        event_wait(m_ctl->posted, prepared, deadline);
        m_receive_spin.slept(clock::now() - waiting);
    }
}

void channel_core::close()
{
    live("close");
    __atomic_store_n(&m_ctl->closed, 1u, __ATOMIC_RELEASE);
    event_signal(m_ctl->posted);
    event_signal(m_ctl->freed);
}

channel_core::channel_core(std::shared_ptr<mapping> m, const npy_info& info, shape_type slot_shape, std::size_t ctl_off)
    : m_map(std::move(m)), m_slot_shape(std::move(slot_shape)), m_slots(info.shape[0]), m_data_offset(info.data_offset)
{
    checked_nbytes(m_slot_shape, itemsize(info.type), m_slot_elems, m_slot_bytes);
    unsigned char* base = m_map->base();
    m_ctl = reinterpret_cast<channel_control*>(base + ctl_off);
    m_recs = reinterpret_cast<slot_record*>(base + ctl_off + sizeof(channel_control));
    m_ring = reinterpret_cast<std::uint32_t*>(m_recs + m_slots);
}

void channel_core::take_from(channel_core& o) noexcept
{
    m_map = std::move(o.m_map);
    m_ctl = std::exchange(o.m_ctl, nullptr);
    m_recs = std::exchange(o.m_recs, nullptr);
    m_ring = std::exchange(o.m_ring, nullptr);
    m_slot_shape = std::move(o.m_slot_shape);
    m_slots = std::exchange(o.m_slots, 0);
    m_slot_elems = std::exchange(o.m_slot_elems, 0);
    m_slot_bytes = std::exchange(o.m_slot_bytes, 0);
    m_data_offset = std::exchange(o.m_data_offset, 0);
    m_next = std::exchange(o.m_next, 0);
    m_receive_spin = o.m_receive_spin;
    m_loan_spin = o.m_loan_spin;
    o.clear();
}

void channel_core::raise_closed(const char* op) const
{
    raise<error>(op, name(), "the channel is closed", "create a new channel", errno_code(EPIPE));
}

void channel_core::raise_corrupt_ring(std::uint32_t i, std::uint64_t h) const
{
    raise<format_error>("receive", name(),
                        "corrupt channel: the ring names slot " + std::to_string(i) + " for publication " +
                            std::to_string(h) + ", which is not that published slot",
                        "something other than ndshm wrote into the segment; recreate the channel",
                        make_error_code(errc::corrupt_control));
}

std::size_t channel_core::reclaim_dead(std::chrono::steady_clock::time_point deadline)
{
    const std::string op = "loan";
    held_lock consumer_side(m_ctl->consumer_lock, lock_deadline(deadline), consumers(op));
    if (!consumer_side.locked()) {
        return 0;
    }
    const std::uint64_t head = __atomic_load_n(&m_ctl->head, __ATOMIC_ACQUIRE);
    const std::uint64_t tail = __atomic_load_n(&m_ctl->tail, __ATOMIC_ACQUIRE);
    proc_cache seen;
    std::size_t n = 0;
    for (std::size_t i = 0; i < m_slots; ++i) {
        auto& rec = m_recs[i];
        const std::uint32_t state = __atomic_load_n(&rec.state, __ATOMIC_ACQUIRE);
        bool gone = false;
        if (state == slot_loaned || state == slot_received) {
            const std::uint64_t pid = __atomic_load_n(&rec.pid, __ATOMIC_RELAXED);
            const std::uint64_t start = __atomic_load_n(&rec.start, __ATOMIC_RELAXED);
            gone = holder_gone(pid, start, &seen);
        } else if (state == slot_ready) {
            const std::uint64_t seq = __atomic_load_n(&rec.seq, __ATOMIC_RELAXED);
            gone = seq < head || seq >= tail;
        }
        if (gone) {
            __atomic_store_n(&rec.state, std::uint32_t(slot_free), __ATOMIC_RELEASE);
            ++n;
        }
    }
    if (n != 0) {
        __atomic_fetch_add(&m_ctl->reclaimed, std::uint64_t(n), __ATOMIC_RELAXED);
        event_signal(m_ctl->freed);
    }
    return n;
}

} // namespace ndshm::detail
#endif // NDSHM_DEFINITIONS

#endif
