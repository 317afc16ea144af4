/// @file channel.hpp
/// `ndshm::channel<T>`: a loan/publish channel over a fixed pool of pre-faulted slots, so that a
/// steady stream of arrays between processes costs no page fault, no copy and, while both sides keep
/// up, no system call.
#ifndef NDSHM_CHANNEL_HPP
#define NDSHM_CHANNEL_HPP

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <utility>

#include "detail/channel_format.hpp"
#include "detail/npy.hpp"
#include "detail/segment_impl.hpp"
#include "detail/sync.hpp"
#include "detail/trailer.hpp"
#include "error.hpp"
#include "options.hpp"
#include "shared_ndarray.hpp"

namespace ndshm {

namespace detail {

/// Where a channel's control block, slot records and ring are in its mapping.
struct channel_parts {
    channel_control* ctl = nullptr;
    slot_record* recs = nullptr;
    std::uint32_t* ring = nullptr;
};

inline channel_parts channel_parts_at(unsigned char* base, std::size_t ctl_off, std::size_t slots) noexcept
{
    channel_parts p;
    p.ctl = reinterpret_cast<channel_control*>(base + ctl_off);
    p.recs = reinterpret_cast<slot_record*>(base + ctl_off + sizeof(channel_control));
    p.ring = reinterpret_cast<std::uint32_t*>(p.recs + slots);
    return p;
}

[[noreturn]] inline void raise_empty_channel(const char* op)
{
    raise<error>(op, "", "the channel handle is empty (default-constructed, moved from or reset)",
                 "create a channel with channel<T>::create or attach one with channel<T>::attach",
                 make_error_code(errc::invalid_argument));
}

} // namespace detail

template <class T>
class channel;

/// One slot of a channel, held by this process: a producer's loan (writable) or a consumer's
/// received message (`slot<const T>`, read-only through its type). Destroying a slot that was not
/// published returns it to the channel's pool. Move-only; a moved-from or released slot is empty:
/// size 0, an empty shape, null data, an empty array() and view(), and index() throws.
template <class T>
class slot {
public:
    slot() = default;
    slot(const slot&) = delete;
    slot& operator=(const slot&) = delete;
    slot(slot&& o) noexcept
        : m_array(std::move(o.m_array)), m_keep(std::move(o.m_keep)), m_rec(std::exchange(o.m_rec, nullptr)),
          m_freed(std::exchange(o.m_freed, nullptr)), m_index(std::exchange(o.m_index, 0)),
          m_pid(std::exchange(o.m_pid, 0))
    {
    }
    slot& operator=(slot&& o) noexcept
    {
        if (this != &o) {
            release();
            m_array = std::move(o.m_array);
            m_keep = std::move(o.m_keep);
            m_rec = std::exchange(o.m_rec, nullptr);
            m_freed = std::exchange(o.m_freed, nullptr);
            m_index = std::exchange(o.m_index, 0);
            m_pid = std::exchange(o.m_pid, 0);
        }
        return *this;
    }
    ~slot() { release(); }

    /// The slot's memory as an array (a shared_ndarray over the channel's mapping, no copy); an empty
    /// handle for an empty slot.
    shared_ndarray<T>& array() noexcept { return m_array; }
    const shared_ndarray<T>& array() const noexcept { return m_array; }
    /// An xtensor view of the slot (an empty view for an empty slot).
    auto view() { return m_array.view(); }
    auto view() const { return m_array.view(); }
    /// The first element (null for an empty slot).
    T* data() noexcept { return m_array.data(); }
    const T* data() const noexcept { return m_array.data(); }
    const shape_type& shape() const noexcept { return m_array.shape(); }
    std::size_t size() const noexcept { return m_array.size(); }
    /// Which slot of the channel this is.
    /// @throws error for an empty slot
    std::size_t index() const
    {
        if (empty()) {
            detail::raise<error>(
                "index", "", "the slot is empty (moved from, released, published, or a timed-out loan)",
                "ask a slot that loan() or receive() returned", make_error_code(errc::invalid_argument));
        }
        return m_index;
    }
    bool empty() const noexcept { return m_rec == nullptr; }
    /// True for a slot that holds a loan or a received message.
    explicit operator bool() const noexcept { return !empty(); }

    /// Returns the slot to the channel now (what the destructor does); the slot is empty afterwards.
    /// Never waits: one store frees the slot, and a sleeping producer is woken.
    void release() noexcept
    {
        if (m_rec != nullptr && m_pid == detail::current_pid()) {
            // Only the holder moves its record (see slot_record); a copy of the handle inherited by a
            // forked child is not the holder and leaves the slot alone.
            __atomic_store_n(&m_rec->pid, std::uint64_t(0), __ATOMIC_RELAXED);
            __atomic_store_n(&m_rec->state, std::uint32_t(detail::slot_free), __ATOMIC_RELEASE);
            detail::event_signal(*m_freed);
        }
        forget();
    }

private:
    template <class U>
    friend class channel;

    void forget() noexcept
    {
        m_rec = nullptr;
        m_freed = nullptr;
        m_index = 0;
        m_pid = 0;
        m_array.reset();
        m_keep.reset();
    }

    shared_ndarray<T> m_array;
    std::shared_ptr<detail::mapping> m_keep; // the channel's mapping, for the record and the event word
    detail::slot_record* m_rec = nullptr;
    std::uint32_t* m_freed = nullptr;
    std::size_t m_index = 0;
    pid_t m_pid = 0;
};

/// A channel of fixed-shape arrays between processes over a pool of pre-faulted slots in one segment.
///
/// The producer `loan()`s a free slot, writes it in place and `publish()`es it; a consumer
/// `receive()`s the oldest published slot as a read-only view and releases it (explicitly or by
/// letting it go), which returns it to the pool. The number of slots is the caller's: more slots let
/// the producer run further ahead of a consumer that is sometimes slow; `loan` blocks while every
/// slot is taken (back-pressure). With several consumers each published slot goes to exactly one of
/// them, in publication order. The segment is a valid `.npy` of shape (slots, *slot_shape), so NumPy
/// sees every slot; the control block follows ndshm's trailer.
///
/// Producers and consumers take separate locks (ndshm's own, detail/sync.hpp), so neither ever waits
/// for the other. A call that finds nothing to do spins for a short, adaptive time (spin_limit())
/// before it sleeps on a futex, and a publish or a release wakes a sleeper only when one sleeps: while
/// both sides keep up, the stream makes no system call. A process killed at any point leaves nothing
/// that blocks the others: slots it held are reclaimed when a loan finds no free slot.
///
/// A moved-from or reset channel is empty, exactly like a default-constructed one: name() "", slots()
/// 0, an empty slot_shape(), closed() false, reclaimed() and published() 0, the default spin_limit(),
/// persist() does nothing, and every call that needs a channel throws ndshm::error.
template <class T>
class channel {
    static_assert(!std::is_const_v<T>, "a channel's element type is not const; receive gives read-only slots");

public:
    /// An empty handle (no channel).
    channel() = default;
    channel(const channel&) = default;
    channel& operator=(const channel&) = default;
    channel(channel&& o) noexcept { take_from(o); }
    channel& operator=(channel&& o) noexcept
    {
        if (this != &o) {
            take_from(o);
        }
        return *this;
    }
    ~channel() = default;

    /// Creates a channel of `slots` slots of `slot_shape`, every page faulted in.
    /// @throws already_exists, permission_denied, out_of_space, error
    static channel create(const shape_type& slot_shape, std::size_t slots, const options& opt = {})
    {
        const std::string op = "create channel";
        if (slots == 0 || slots > detail::channel_max_slots) {
            detail::raise<error>(op, opt.name, "a channel needs 1 to 65536 slots", "pass a slot count in that range",
                                 make_error_code(errc::invalid_argument));
        }
        shape_type shape{slots};
        shape.insert(shape.end(), slot_shape.begin(), slot_shape.end());
        detail::npy_info info;
        info.type = dtype_of<T>;
        info.shape = shape;
        info.data_offset = detail::data_offset_for(opt, op);
        std::size_t slot_elems = 0, slot_bytes = 0;
        if (!detail::checked_nbytes(slot_shape, sizeof(T), slot_elems, slot_bytes) ||
            !detail::checked_nbytes(shape, sizeof(T), info.size, info.nbytes)) {
            detail::raise<out_of_space>(op, opt.name, "the channel's size overflows", "use smaller slots",
                                        detail::errno_code(EOVERFLOW));
        }
        const std::size_t toff = detail::trailer_offset(info.data_offset + info.nbytes);
        const std::size_t ctl_off = toff + sizeof(detail::trailer);
        options o = opt;
        o.populate = true;
        auto m = detail::create_segment(o, ctl_off + detail::channel_extra_bytes(slots), op);
        if (!detail::write_npy_header(m->base(), info.data_offset, info.type, shape, false)) {
            detail::raise<error>(op, m->name(), "the .npy header does not fit before the data", "use fewer dimensions",
                                 make_error_code(errc::invalid_argument));
        }
        detail::write_trailer(*m, toff, detail::kind_channel, info.data_offset, info.nbytes);
        auto* ctl = reinterpret_cast<detail::channel_control*>(m->base() + ctl_off);
        std::memcpy(ctl->magic, detail::channel_magic, sizeof ctl->magic);
        ctl->slots = static_cast<std::uint32_t>(slots);
        ctl->slot_bytes = slot_bytes;
        detail::init_lock(&ctl->producer_lock);
        detail::init_lock(&ctl->consumer_lock);
        // Touch every slot page so that no first write pays a fault (MAP_POPULATE maps, this dirties).
        std::memset(m->base() + info.data_offset, 0, info.nbytes);
        m->publish();
        return channel(std::move(m), info, slot_shape, ctl_off);
    }

    /// Attaches the channel `name` (pages are mapped in up front, options::populate is implied).
    /// @throws not_found, permission_denied, format_error (not a channel, corrupt), dtype_mismatch
    static channel attach(const std::string& name, const options& opt = {})
    {
        const std::string op = "attach channel";
        options o = opt;
        o.populate = true;
        o.read_only = false;
        detail::npy_info info;
        std::uint32_t kind = 0;
        auto m = detail::open_npy_segment(o, name, op, info, kind);
        if (kind != detail::kind_channel) {
            detail::raise<format_error>(op, name, "the segment is not a channel",
                                        "attach arrays with shared_ndarray<T>::attach, objects with ndshm::load",
                                        make_error_code(errc::wrong_kind));
        }
        if (info.type != dtype_of<T>) {
            detail::raise<dtype_mismatch>(
                op, name,
                std::string("the channel carries ") + dtype_name(info.type) + ", not " + dtype_name(dtype_of<T>),
                "attach it as channel<T> with the matching element type", make_error_code(errc::dtype_mismatch));
        }
        const std::size_t ctl_off = detail::trailer_offset(info.data_offset + info.nbytes) + sizeof(detail::trailer);
        const auto bad = [&](const std::string& why) {
            detail::raise<format_error>(op, name, "corrupt channel: " + why, "recreate the channel",
                                        make_error_code(errc::corrupt_control));
        };
        if (info.shape.empty() || info.fortran_order || ctl_off > m->size() ||
            m->size() - ctl_off < sizeof(detail::channel_control)) {
            bad("no control block");
        }
        const auto* ctl = reinterpret_cast<const detail::channel_control*>(m->base() + ctl_off);
        const std::size_t slots = info.shape[0];
        if (std::memcmp(ctl->magic, detail::channel_magic, sizeof ctl->magic) != 0) {
            bad("unknown control block (magic), perhaps made by another ndshm version");
        }
        if (ctl->slots != slots || slots == 0 || slots > detail::channel_max_slots ||
            ctl->slot_bytes * slots != info.nbytes || m->size() - ctl_off < detail::channel_extra_bytes(slots)) {
            bad("the control block disagrees with the header");
        }
        const shape_type slot_shape(info.shape.begin() + 1, info.shape.end());
        return channel(std::move(m), info, slot_shape, ctl_off);
    }

    /// The channel's name, to pass to other processes; empty for an empty handle.
    const std::string& name() const noexcept
    {
        static const std::string none;
        return m_map ? m_map->name() : none;
    }
    /// Number of slots (0 for an empty handle).
    std::size_t slots() const noexcept { return m_slots; }
    /// The shape of every slot (empty for an empty handle).
    const shape_type& slot_shape() const noexcept { return m_slot_shape; }
    /// True for a handle without a channel (default-constructed, moved from or reset).
    bool empty() const noexcept { return !m_map; }
    explicit operator bool() const noexcept { return static_cast<bool>(m_map); }
    /// Drops this handle, which becomes empty. Slots it loaned or received stay valid.
    void reset() noexcept { clear(); }

    /// Loans a free slot, waiting while all are taken. A loan that finds no free slot checks, at growing
    /// intervals (at once for a try, then 1 ms to 50 ms), for slots whose holder died, and takes them
    /// back.
    /// @throws error if the channel is closed or the handle is empty
    slot<T> loan() { return loan_until(std::chrono::steady_clock::time_point::max()); }

    /// Like loan(), but waits at most `timeout` (zero or negative: a try, as try_loan()).
    /// @returns an empty slot on time-out
    template <class Rep, class Period>
    slot<T> loan(const std::chrono::duration<Rep, Period>& timeout)
    {
        return loan_until(detail::deadline_in(std::chrono::ceil<std::chrono::steady_clock::duration>(timeout)));
    }

    /// Loans a free slot if one is free now; an empty slot otherwise.
    slot<T> try_loan() { return loan_until(std::chrono::steady_clock::now()); }

    /// Publishes a loaned slot: it goes to the next receive, in order. The slot is consumed.
    /// @throws error if `s` is empty or not a loan of this channel, or the handle is empty
    void publish(slot<T>&& s)
    {
        live("publish");
        if (s.empty() || s.m_rec == nullptr || s.m_freed != &m_ctl->freed || s.m_pid != detail::current_pid()) {
            detail::raise<error>("publish", name(), "the slot is empty or was not loaned from this channel",
                                 "publish a slot returned by this channel's loan()",
                                 make_error_code(errc::invalid_argument));
        }
        const std::size_t i = s.m_index;
        const std::string op = "publish";
        {
            detail::held_lock lock(m_ctl->producer_lock, std::chrono::steady_clock::time_point::max(), producers(op));
            auto& rec = m_recs[i];
            const std::uint64_t n = __atomic_load_n(&m_ctl->tail, __ATOMIC_RELAXED);
            __atomic_store_n(&m_ring[n % m_slots], static_cast<std::uint32_t>(i), __ATOMIC_RELAXED);
            __atomic_store_n(&rec.seq, n, __ATOMIC_RELAXED);
            __atomic_store_n(&rec.pid, std::uint64_t(0), __ATOMIC_RELAXED);
            __atomic_store_n(&rec.state, std::uint32_t(detail::slot_ready), __ATOMIC_RELEASE);
            __atomic_store_n(&m_ctl->tail, n + 1, __ATOMIC_RELEASE);
            __atomic_store_n(&m_ctl->published, __atomic_load_n(&m_ctl->published, __ATOMIC_RELAXED) + 1,
                             __ATOMIC_RELAXED);
        }
        s.forget(); // the channel holds it now
        detail::event_signal(m_ctl->posted);
    }

    /// Receives the oldest published slot as a read-only view, waiting while none is published.
    /// @returns an empty slot once the channel is closed and drained
    /// @throws format_error if the ring is corrupt; error if the handle is empty
    slot<const T> receive() { return receive_until(std::chrono::steady_clock::time_point::max()); }

    /// Like receive(), but waits at most `timeout` (zero or negative: a try, as try_receive()).
    /// @returns an empty slot on time-out, or when the channel is closed and drained
    template <class Rep, class Period>
    slot<const T> receive(const std::chrono::duration<Rep, Period>& timeout)
    {
        return receive_until(detail::deadline_in(std::chrono::ceil<std::chrono::steady_clock::duration>(timeout)));
    }

    /// Receives a published slot if one is waiting now.
    slot<const T> try_receive() { return receive_until(std::chrono::steady_clock::now()); }

    /// Closes the channel: loans fail from now on, and receivers wake and get what is still published,
    /// then empty slots. Never waits.
    /// @throws error if the handle is empty
    void close()
    {
        live("close");
        __atomic_store_n(&m_ctl->closed, 1u, __ATOMIC_RELEASE);
        detail::event_signal(m_ctl->posted);
        detail::event_signal(m_ctl->freed);
    }
    /// True once the channel is closed (false for an empty handle).
    bool closed() const noexcept { return m_ctl != nullptr && closed_now(); }

    /// Slots taken back from processes that died while holding them (0 for an empty handle).
    std::uint64_t reclaimed() const noexcept
    {
        return m_ctl != nullptr ? __atomic_load_n(&m_ctl->reclaimed, __ATOMIC_ACQUIRE) : 0;
    }
    /// Slots published so far, by every process (0 for an empty handle).
    std::uint64_t published() const noexcept
    {
        return m_ctl != nullptr ? __atomic_load_n(&m_ctl->published, __ATOMIC_ACQUIRE) : 0;
    }

    /// The longest a call of this handle spins for a slot or a message before it sleeps (10 µs by
    /// default; the spin adapts below it to how long waits turn out to be). Zero never spins: every
    /// wait sleeps at once, and each wake-up costs a system call on both sides.
    std::chrono::nanoseconds spin_limit() const noexcept { return m_receive_spin.limit(); }
    void set_spin_limit(std::chrono::nanoseconds limit) noexcept
    {
        m_receive_spin.set_limit(limit);
        m_loan_spin.set_limit(limit);
    }

    /// Hands the name over like shared_ndarray::persist.
    void persist() noexcept
    {
        if (m_map) {
            m_map->persist();
        }
    }

private:
    /// loan() with its deadline (time_point::max(): none; now or earlier: a try).
    slot<T> loan_until(std::chrono::steady_clock::time_point deadline)
    {
        live("loan");
        const std::string op = "loan";
        using clock = std::chrono::steady_clock;
        // When to look for slots of dead holders next: at once for a try, else after 1 ms of waiting.
        clock::time_point next_check{};
        auto interval = std::chrono::milliseconds(1);
        for (;;) {
            std::uint32_t seen = 0;
            {
                detail::held_lock lock(m_ctl->producer_lock, detail::lock_deadline(deadline), producers(op));
                if (!lock.locked()) {
                    return {};
                }
                check_open("loan");
                seen = __atomic_load_n(&m_ctl->freed, __ATOMIC_ACQUIRE);
                const std::size_t i = find_free();
                if (i < m_slots) {
                    take(i, detail::slot_loaned);
                    m_next = (i + 1) % m_slots;
                    return make_slot<T>(i);
                }
                const auto now = clock::now();
                if (next_check == clock::time_point{}) {
                    next_check = deadline <= now ? now : now + interval;
                }
                if (now >= next_check) {
                    next_check = now + interval;
                    interval = std::min(interval * 2, std::chrono::milliseconds(50));
                    if (reclaim_dead(deadline) > 0) {
                        continue;
                    }
                }
            }
            const auto now = clock::now();
            if (now >= deadline) {
                return {};
            }
            const auto until = std::min(deadline, next_check);
            const auto freed = [&] { return __atomic_load_n(&m_ctl->freed, __ATOMIC_ACQUIRE) != seen || closed_now(); };
            if (m_loan_spin.spin(freed, until)) {
                continue;
            }
            const std::uint32_t prepared = detail::event_prepare(m_ctl->freed);
            if (any_free() || closed_now()) {
                continue;
            }
            const auto slept = clock::now();
            detail::event_wait(m_ctl->freed, prepared, until);
            m_loan_spin.slept(clock::now() - slept);
        }
    }

    /// receive() with its deadline, as loan_until.
    slot<const T> receive_until(std::chrono::steady_clock::time_point deadline)
    {
        live("receive");
        const std::string op = "receive";
        using clock = std::chrono::steady_clock;
        clock::time_point waiting{};
        for (;;) {
            if (published_now()) {
                detail::held_lock lock(m_ctl->consumer_lock, detail::lock_deadline(deadline), consumers(op));
                if (!lock.locked()) {
                    return {};
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
                return {};
            }
            const auto now = clock::now();
            if (now >= deadline) {
                return {};
            }
            if (waiting == clock::time_point{}) {
                waiting = now;
            }
            if (m_receive_spin.spin([&] { return published_now() || closed_now(); }, deadline)) {
                continue;
            }
            const std::uint32_t prepared = detail::event_prepare(m_ctl->posted);
            if (published_now() || closed_now()) {
                continue;
            }
            detail::event_wait(m_ctl->posted, prepared, deadline);
            m_receive_spin.slept(clock::now() - waiting);
        }
    }

    channel(std::shared_ptr<detail::mapping> m, const detail::npy_info& info, shape_type slot_shape,
            std::size_t ctl_off)
        : m_map(std::move(m)), m_slot_shape(std::move(slot_shape)), m_slots(info.shape[0]),
          m_data_offset(info.data_offset)
    {
        detail::checked_nbytes(m_slot_shape, sizeof(T), m_slot_elems, m_slot_bytes);
        const detail::channel_parts p = detail::channel_parts_at(m_map->base(), ctl_off, m_slots);
        m_ctl = p.ctl;
        m_recs = p.recs;
        m_ring = p.ring;
    }

    void take_from(channel& o) noexcept
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

    void clear() noexcept
    {
        m_map.reset();
        m_ctl = nullptr;
        m_recs = nullptr;
        m_ring = nullptr;
        m_slot_shape = shape_type{};
        m_slots = m_slot_elems = m_slot_bytes = m_data_offset = m_next = 0;
        // An empty handle is a default-constructed one in every respect, spin limit included.
        m_receive_spin = detail::spin_policy();
        m_loan_spin = detail::spin_policy();
    }

    void live(const char* op) const
    {
        if (!m_map) {
            detail::raise_empty_channel(op);
        }
    }

    detail::lock_context producers(const std::string& op) const noexcept
    {
        return {op, name(), "the channel's producer lock"};
    }
    detail::lock_context consumers(const std::string& op) const noexcept
    {
        return {op, name(), "the channel's consumer lock"};
    }

    bool closed_now() const noexcept { return __atomic_load_n(&m_ctl->closed, __ATOMIC_ACQUIRE) != 0; }
    bool published_now() const noexcept
    {
        return __atomic_load_n(&m_ctl->head, __ATOMIC_RELAXED) < __atomic_load_n(&m_ctl->tail, __ATOMIC_ACQUIRE);
    }

    void check_open(const char* op) const
    {
        if (closed_now()) {
            detail::raise<error>(op, name(), "the channel is closed", "create a new channel",
                                 detail::errno_code(EPIPE));
        }
    }

    /// A free slot, looking from the one after the last loan (so slots are used in turn); m_slots if none.
    std::size_t find_free() const noexcept
    {
        for (std::size_t k = 0; k < m_slots; ++k) {
            const std::size_t i = (m_next + k) % m_slots;
            if (__atomic_load_n(&m_recs[i].state, __ATOMIC_ACQUIRE) == detail::slot_free) {
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
        const detail::process_identity me = detail::this_process();
        __atomic_store_n(&rec.pid, me.pid, __ATOMIC_RELAXED);
        __atomic_store_n(&rec.start, me.start, __ATOMIC_RELAXED);
        __atomic_store_n(&rec.state, state, __ATOMIC_RELEASE);
    }

    // With the consumers' lock held and publication h waiting: checks it and takes it.
    slot<const T> take_published(std::uint64_t h)
    {
        const std::uint32_t i = __atomic_load_n(&m_ring[h % m_slots], __ATOMIC_RELAXED);
        if (i >= m_slots || __atomic_load_n(&m_recs[i].state, __ATOMIC_ACQUIRE) != detail::slot_ready ||
            __atomic_load_n(&m_recs[i].seq, __ATOMIC_RELAXED) != h) {
            detail::raise<format_error>("receive", name(),
                                        "corrupt channel: the ring names slot " + std::to_string(i) +
                                            " for publication " + std::to_string(h) +
                                            ", which is not that published slot",
                                        "something other than ndshm wrote into the segment; recreate the channel",
                                        make_error_code(errc::corrupt_control));
        }
        __atomic_store_n(&m_ctl->head, h + 1, __ATOMIC_RELEASE);
        __atomic_store_n(&m_ctl->received, __atomic_load_n(&m_ctl->received, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
        take(i, detail::slot_received);
        return make_slot<const T>(i);
    }

    // Called with the producers' lock held, when no slot is free. Takes the consumers' lock too (by
    // `deadline`; without it, nothing is reclaimed this time) and frees, by the positive-evidence rule of
    // detail/liveness.hpp, slots loaned or received by processes that are gone (a holder that cannot be
    // judged keeps its slots; a record naming no possible process has no holder to wait for), and slots
    // left ready outside [head, tail) by a process killed in the middle of publishing or receiving.
    std::size_t reclaim_dead(std::chrono::steady_clock::time_point deadline)
    {
        const std::string op = "loan";
        detail::held_lock consumer_side(m_ctl->consumer_lock, detail::lock_deadline(deadline), consumers(op));
        if (!consumer_side.locked()) {
            return 0;
        }
        const std::uint64_t head = __atomic_load_n(&m_ctl->head, __ATOMIC_ACQUIRE);
        const std::uint64_t tail = __atomic_load_n(&m_ctl->tail, __ATOMIC_ACQUIRE);
        detail::proc_cache seen;
        std::size_t n = 0;
        for (std::size_t i = 0; i < m_slots; ++i) {
            auto& rec = m_recs[i];
            const std::uint32_t state = __atomic_load_n(&rec.state, __ATOMIC_ACQUIRE);
            bool gone = false;
            if (state == detail::slot_loaned || state == detail::slot_received) {
                const std::uint64_t pid = __atomic_load_n(&rec.pid, __ATOMIC_RELAXED);
                const std::uint64_t start = __atomic_load_n(&rec.start, __ATOMIC_RELAXED);
                gone = !detail::valid_pid(pid) ||
                       detail::check_process(pid, start, &seen).state == detail::liveness::dead;
            } else if (state == detail::slot_ready) {
                const std::uint64_t seq = __atomic_load_n(&rec.seq, __ATOMIC_RELAXED);
                gone = seq < head || seq >= tail;
            }
            if (gone) {
                __atomic_store_n(&rec.state, std::uint32_t(detail::slot_free), __ATOMIC_RELEASE);
                ++n;
            }
        }
        if (n != 0) {
            __atomic_fetch_add(&m_ctl->reclaimed, std::uint64_t(n), __ATOMIC_RELAXED);
            detail::event_signal(m_ctl->freed);
        }
        return n;
    }

    template <class U>
    slot<U> make_slot(std::size_t i)
    {
        detail::npy_info info;
        info.type = dtype_of<T>;
        info.shape = m_slot_shape;
        info.size = m_slot_elems;
        info.nbytes = m_slot_bytes;
        info.data_offset = m_data_offset + i * m_slot_bytes;
        slot<U> s;
        s.m_array = detail::array_access::make<U>(m_map, info);
        s.m_keep = m_map;
        s.m_rec = &m_recs[i];
        s.m_freed = &m_ctl->freed;
        s.m_index = i;
        s.m_pid = detail::current_pid();
        return s;
    }

    std::shared_ptr<detail::mapping> m_map;
    detail::channel_control* m_ctl = nullptr;
    detail::slot_record* m_recs = nullptr;
    std::uint32_t* m_ring = nullptr;
    shape_type m_slot_shape;
    std::size_t m_slots = 0;
    std::size_t m_slot_elems = 0;
    std::size_t m_slot_bytes = 0;
    std::size_t m_data_offset = 0;
    std::size_t m_next = 0; // where the next loan starts looking
    detail::spin_policy m_receive_spin;
    detail::spin_policy m_loan_spin;
};

} // namespace ndshm

#endif
