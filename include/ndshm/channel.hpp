/// @file channel.hpp
/// `ndshm::channel<T>`: a loan/publish channel over a fixed pool of pre-faulted slots, so that a
/// steady stream of arrays between processes costs no page fault and no copy.
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
#include "detail/sync.hpp"
#include "detail/segment_impl.hpp"
#include "detail/trailer.hpp"
#include "error.hpp"
#include "options.hpp"
#include "shared_ndarray.hpp"

namespace ndshm {

namespace detail {

/// The deadline of a channel call: `timeout` from now, a negative timeout waits forever.
inline std::chrono::steady_clock::time_point channel_deadline(std::chrono::nanoseconds timeout) noexcept
{
    return timeout < std::chrono::nanoseconds::zero()
               ? std::chrono::steady_clock::time_point::max()
               : deadline_in(std::chrono::duration_cast<std::chrono::steady_clock::duration>(timeout));
}

/// Holds a channel's lock; waits on one of its futex words with the lock released. Taking the lock
/// may time out (a stopped peer holds it): check locked().
class channel_lock {
public:
    channel_lock(lock_area& a, std::chrono::steady_clock::time_point deadline, const char* op, const std::string& name)
        : m_op(op), m_name(name), m_lock(a, lock_deadline(deadline), ctx())
    {
    }
    channel_lock(const channel_lock&) = delete;
    channel_lock& operator=(const channel_lock&) = delete;
    bool locked() const noexcept { return m_lock.locked(); }

    /// Unlocks, sleeps until `*word` changes from `seen` (or the deadline), relocks. False once the
    /// deadline has passed, or if the lock could not be had again in time (then it is not held).
    bool wait(std::uint32_t* word, std::uint32_t seen, std::chrono::steady_clock::time_point deadline)
    {
        if (std::chrono::steady_clock::now() >= deadline) {
            return false;
        }
        m_lock.unlock();
        futex_wait(word, seen, deadline);
        return m_lock.relock(lock_deadline(deadline), ctx());
    }

private:
    lock_context ctx() const noexcept { return {m_op, m_name, "the channel's lock"}; }

    std::string m_op;
    const std::string& m_name;
    held_lock m_lock;
};

/// Bumps a futex word and wakes its waiters.
inline void bump(std::uint32_t& word) noexcept
{
    __atomic_add_fetch(&word, 1u, __ATOMIC_RELEASE);
    futex_wake_all(&word);
}

} // namespace detail

template <class T>
class channel;

/// One slot of a channel, held by this process: a producer's loan (writable) or a consumer's
/// received message (`slot<const T>`, read-only through its type). Destroying a slot that was not
/// published returns it to the channel's pool. Move-only.
template <class T>
class slot {
public:
    slot() = default;
    slot(const slot&) = delete;
    slot& operator=(const slot&) = delete;
    slot(slot&& o) noexcept
        : m_array(std::move(o.m_array)), m_owner(std::move(o.m_owner)), m_index(o.m_index),
          m_release(std::exchange(o.m_release, nullptr))
    {
    }
    slot& operator=(slot&& o) noexcept
    {
        if (this != &o) {
            release();
            m_array = std::move(o.m_array);
            m_owner = std::move(o.m_owner);
            m_index = o.m_index;
            m_release = std::exchange(o.m_release, nullptr);
        }
        return *this;
    }
    ~slot() { release(); }

    /// The slot's memory as an array (a shared_ndarray over the channel's mapping, no copy).
    shared_ndarray<T>& array() noexcept { return m_array; }
    const shared_ndarray<T>& array() const noexcept { return m_array; }
    auto view() { return m_array.view(); }
    T* data() noexcept { return m_array.data(); }
    const shape_type& shape() const noexcept { return m_array.shape(); }
    std::size_t size() const noexcept { return m_array.size(); }
    std::size_t index() const noexcept { return m_index; }
    bool empty() const noexcept { return m_release == nullptr; }
    /// True for a slot that holds a loan or a received message.
    explicit operator bool() const noexcept { return !empty(); }

    /// Returns the slot to the channel now (what the destructor does).
    void release() noexcept
    {
        if (m_release != nullptr) {
            m_release(*m_owner, m_index);
            m_release = nullptr;
        }
        m_array.reset();
    }

private:
    template <class U>
    friend class channel;
    using release_fn = void (*)(const std::shared_ptr<detail::mapping>&, std::size_t) noexcept;

    shared_ndarray<T> m_array;
    std::shared_ptr<std::shared_ptr<detail::mapping>> m_owner;
    std::size_t m_index = 0;
    release_fn m_release = nullptr;
};

/// A channel of fixed-shape arrays between processes over a pool of pre-faulted slots in one segment.
///
/// The producer `loan()`s a free slot, writes it in place and `publish()`es it; a consumer
/// `receive()`s the oldest published slot as a read-only view and releases it (explicitly or by
/// letting it go), which returns it to the pool. Waits sleep on futex words, so a process killed while it
/// waits leaves nothing behind that could block the others. Several slots may be in flight; `loan` blocks while
/// every slot is taken (back-pressure). With several consumers each published slot goes to exactly
/// one of them, in publication order. Slots held by a process that died are reclaimed when a loan
/// finds no free slot. The segment is a valid `.npy` of shape (slots, *slot_shape), so NumPy sees
/// every slot; the control block follows ndshm's trailer.
template <class T>
class channel {
    static_assert(!std::is_const_v<T>, "a channel's element type is not const; receive gives read-only slots");

public:
    channel() = default;

    /// Creates a channel of `slots` slots of `slot_shape`, every page faulted in.
    /// @throws already_exists, permission_denied, out_of_space, error
    static channel create(const shape_type& slot_shape, std::size_t slots, const options& opt = {})
    {
        const std::string op = "create channel";
        if (slots == 0 || slots > 65536) {
            detail::raise<error>(op, opt.name, "a channel needs 1 to 65536 slots", "pass a slot count in that range",
                                 detail::errno_code(EINVAL));
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
                                 detail::errno_code(EINVAL));
        }
        detail::write_trailer(*m, toff, detail::kind_channel, info.data_offset, info.nbytes);
        auto* ctl = reinterpret_cast<detail::channel_control*>(m->base() + ctl_off);
        std::memcpy(ctl->magic, detail::channel_magic, sizeof ctl->magic);
        ctl->slots = static_cast<std::uint32_t>(slots);
        ctl->slot_bytes = slot_bytes;
        detail::init_lock(&ctl->lock);
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
                                        detail::errno_code(EINVAL));
        }
        if (info.type != dtype_of<T>) {
            detail::raise<dtype_mismatch>(
                op, name,
                std::string("the channel carries ") + dtype_name(info.type) + ", not " + dtype_name(dtype_of<T>),
                "attach it as channel<T> with the matching element type", detail::errno_code(EINVAL));
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
        if (std::memcmp(ctl->magic, detail::channel_magic, sizeof ctl->magic) != 0 || ctl->slots != slots ||
            slots == 0 || ctl->slot_bytes * slots != info.nbytes ||
            m->size() - ctl_off < detail::channel_extra_bytes(slots)) {
            bad("the control block disagrees with the header");
        }
        const shape_type slot_shape(info.shape.begin() + 1, info.shape.end());
        return channel(std::move(m), info, slot_shape, ctl_off);
    }

    const std::string& name() const noexcept
    {
        static const std::string none;
        return m_map ? m_map->name() : none;
    }
    std::size_t slots() const noexcept { return m_slots; }
    const shape_type& slot_shape() const noexcept { return m_slot_shape; }
    bool empty() const noexcept { return !m_map; }

    /// Loans a free slot, waiting up to `timeout` while all are taken (negative: forever).
    /// @returns an empty slot on time-out
    /// @throws error if the channel is closed
    slot<T> loan(std::chrono::nanoseconds timeout = std::chrono::nanoseconds(-1))
    {
        const auto deadline = detail::channel_deadline(timeout);
        detail::channel_lock lock(ctl()->lock, deadline, "loan", name());
        if (!lock.locked()) {
            return {};
        }
        for (;;) {
            check_open("loan");
            const std::uint32_t seen = __atomic_load_n(&ctl()->freed, __ATOMIC_ACQUIRE);
            for (std::size_t i = 0; i < m_slots; ++i) {
                if (__atomic_load_n(&records()[i].state, __ATOMIC_ACQUIRE) == detail::slot_free) {
                    take(i, detail::slot_loaned);
                    return make_slot<T>(i);
                }
            }
            if (reclaim_dead() > 0) {
                continue;
            }
            if (!lock.wait(&ctl()->freed, seen, deadline)) {
                return {};
            }
        }
    }

    /// Loans a free slot if one is free now; an empty slot otherwise.
    slot<T> try_loan() { return loan(std::chrono::nanoseconds::zero()); }

    /// Publishes a loaned slot: it goes to the next receive, in order. The slot is consumed.
    /// @throws error if `s` is empty or not a loan of this channel
    void publish(slot<T>&& s)
    {
        if (s.empty() || !s.m_owner || *s.m_owner != m_map) {
            detail::raise<error>("publish", name(), "the slot is empty or was not loaned from this channel",
                                 "publish a slot returned by this channel's loan()", detail::errno_code(EINVAL));
        }
        {
            detail::channel_lock lock(ctl()->lock, std::chrono::steady_clock::time_point::max(), "publish", name());
            auto& rec = records()[s.m_index];
            __atomic_store_n(&rec.pid, std::uint64_t(0), __ATOMIC_RELAXED);
            __atomic_store_n(&rec.state, std::uint32_t(detail::slot_ready), __ATOMIC_RELEASE);
            ring()[ctl()->tail % m_slots] = static_cast<std::uint32_t>(s.m_index);
            ++ctl()->tail;
            ++ctl()->published;
            detail::bump(ctl()->posted);
        }
        s.m_release = nullptr; // the channel holds it now
        s.release();
    }

    /// Receives the oldest published slot as a read-only view, waiting up to `timeout` (negative:
    /// forever). @returns an empty slot on time-out, or when the channel is closed and drained.
    slot<const T> receive(std::chrono::nanoseconds timeout = std::chrono::nanoseconds(-1))
    {
        const auto deadline = detail::channel_deadline(timeout);
        detail::channel_lock lock(ctl()->lock, deadline, "receive", name());
        if (!lock.locked()) {
            return {};
        }
        for (;;) {
            auto* c = ctl();
            const std::uint32_t seen = __atomic_load_n(&c->posted, __ATOMIC_ACQUIRE);
            if (c->head < c->tail) {
                if (c->tail - c->head > m_slots) {
                    detail::raise<format_error>("receive", name(),
                                                "corrupt channel: the ring holds more entries than there are slots",
                                                "recreate the channel", make_error_code(errc::corrupt_control));
                }
                const std::uint32_t i = ring()[c->head % m_slots];
                if (i >= m_slots || __atomic_load_n(&records()[i].state, __ATOMIC_ACQUIRE) != detail::slot_ready) {
                    detail::raise<format_error>("receive", name(),
                                                "corrupt channel: the ring names a slot that is not ready",
                                                "recreate the channel", make_error_code(errc::corrupt_control));
                }
                ++c->head;
                take(i, detail::slot_received);
                return make_slot<const T>(i);
            }
            if (c->closed != 0) {
                return {};
            }
            if (!lock.wait(&c->posted, seen, deadline)) {
                return {};
            }
        }
    }

    /// Receives a published slot if one is waiting now.
    slot<const T> try_receive() { return receive(std::chrono::nanoseconds::zero()); }

    /// Closes the channel: loans fail from now on, and receivers wake and get what is still published,
    /// then empty slots.
    void close()
    {
        detail::channel_lock lock(ctl()->lock, std::chrono::steady_clock::time_point::max(), "close", name());
        __atomic_store_n(&ctl()->closed, 1u, __ATOMIC_RELEASE);
        detail::bump(ctl()->posted);
        detail::bump(ctl()->freed);
    }
    bool closed() const noexcept { return __atomic_load_n(&ctl()->closed, __ATOMIC_ACQUIRE) != 0; }

    /// Slots taken back from processes that died while holding them.
    std::uint64_t reclaimed() const noexcept { return __atomic_load_n(&ctl()->reclaimed, __ATOMIC_ACQUIRE); }

    /// Hands the name over like shared_ndarray::persist.
    void persist() noexcept
    {
        if (m_map) {
            m_map->persist();
        }
    }

private:
    channel(std::shared_ptr<detail::mapping> m, const detail::npy_info& info, shape_type slot_shape,
            std::size_t ctl_off)
        : m_map(std::move(m)), m_slot_shape(std::move(slot_shape)), m_slots(info.shape[0]),
          m_data_offset(info.data_offset), m_ctl_off(ctl_off)
    {
        detail::checked_nbytes(m_slot_shape, sizeof(T), m_slot_elems, m_slot_bytes);
        m_owner = std::make_shared<std::shared_ptr<detail::mapping>>(m_map);
    }

    detail::channel_control* ctl() const noexcept
    {
        return reinterpret_cast<detail::channel_control*>(m_map->base() + m_ctl_off);
    }
    detail::slot_record* records() const noexcept
    {
        return reinterpret_cast<detail::slot_record*>(m_map->base() + m_ctl_off + sizeof(detail::channel_control));
    }
    std::uint32_t* ring() const noexcept { return reinterpret_cast<std::uint32_t*>(records() + m_slots); }

    void check_open(const char* op) const
    {
        if (ctl()->closed != 0) {
            detail::raise<error>(op, name(), "the channel is closed", "create a new channel",
                                 detail::errno_code(EPIPE));
        }
    }

    // Called with the lock held: the holder first, then the state (see slot_record).
    void take(std::size_t i, std::uint32_t state) noexcept
    {
        auto& rec = records()[i];
        const detail::process_identity me = detail::this_process();
        __atomic_store_n(&rec.pid, me.pid, __ATOMIC_RELAXED);
        __atomic_store_n(&rec.start, me.start, __ATOMIC_RELAXED);
        __atomic_store_n(&rec.state, state, __ATOMIC_RELEASE);
    }

    // Frees slots loaned or received by processes that are gone, by the positive-evidence rule of
    // detail/liveness.hpp: a holder that cannot be judged (no descriptor free to read /proc, say) keeps
    // its slots. A record that names no possible process (pid 0 or beyond the kernel's limit) has no
    // holder to wait for. Called with the lock held; only a holder's death moves its record, so this
    // never races with the holder's own release.
    std::size_t reclaim_dead()
    {
        std::size_t n = 0;
        for (std::size_t i = 0; i < m_slots; ++i) {
            auto& rec = records()[i];
            const std::uint32_t state = __atomic_load_n(&rec.state, __ATOMIC_ACQUIRE);
            if (state != detail::slot_loaned && state != detail::slot_received) {
                continue;
            }
            const std::uint64_t pid = __atomic_load_n(&rec.pid, __ATOMIC_RELAXED);
            const std::uint64_t start = __atomic_load_n(&rec.start, __ATOMIC_RELAXED);
            if (!detail::valid_pid(pid) || detail::check_process(pid, start).state == detail::liveness::dead) {
                __atomic_store_n(&rec.state, std::uint32_t(detail::slot_free), __ATOMIC_RELEASE);
                ++n;
            }
        }
        __atomic_fetch_add(&ctl()->reclaimed, std::uint64_t(n), __ATOMIC_RELAXED);
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
        s.m_owner = m_owner;
        s.m_index = i;
        s.m_release = &release_slot;
        return s;
    }

    static void release_slot(const std::shared_ptr<detail::mapping>& m, std::size_t i) noexcept
    {
        const std::size_t ctl_off = find_ctl(*m);
        auto* c = reinterpret_cast<detail::channel_control*>(m->base() + ctl_off);
        auto* recs = reinterpret_cast<detail::slot_record*>(m->base() + ctl_off + sizeof(detail::channel_control));
        // Without the lock, so that letting a slot go never waits for a stopped peer: only this process
        // moves a record it holds (see reclaim_dead), and one store publishes the slot as free.
        __atomic_store_n(&recs[i].state, std::uint32_t(detail::slot_free), __ATOMIC_RELEASE);
        detail::bump(c->freed);
    }

    // The control block follows the trailer, whose position the mapping knows.
    static std::size_t find_ctl(const detail::mapping& m) noexcept
    {
        return static_cast<std::size_t>(reinterpret_cast<const unsigned char*>(m.get_trailer()) - m.base()) +
               sizeof(detail::trailer);
    }

    std::shared_ptr<detail::mapping> m_map;
    std::shared_ptr<std::shared_ptr<detail::mapping>> m_owner; // identifies this channel's slots
    shape_type m_slot_shape;
    std::size_t m_slots = 0;
    std::size_t m_slot_elems = 0;
    std::size_t m_slot_bytes = 0;
    std::size_t m_data_offset = 0;
    std::size_t m_ctl_off = 0;
};

} // namespace ndshm

#endif
