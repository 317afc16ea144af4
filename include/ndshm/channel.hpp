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

#include "detail/channel_core.hpp"
#include "error.hpp"
#include "options.hpp"
#include "shared_ndarray.hpp"

namespace ndshm {

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
            detail::raise_empty_slot();
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

    /// Creates a channel of `slots` slots of `slot_shape`, every page faulted in.
    /// @throws already_exists, permission_denied, out_of_space, error
    static channel create(const shape_type& slot_shape, std::size_t slots, const options& opt = {})
    {
        return channel(detail::channel_core::create(dtype_of<T>, slot_shape, slots, opt));
    }

    /// Attaches the channel `name` (pages are mapped in up front, options::populate is implied).
    /// @throws not_found, permission_denied, format_error (not a channel, corrupt), dtype_mismatch
    static channel attach(const std::string& name, const options& opt = {})
    {
        return channel(detail::channel_core::attach(dtype_of<T>, name, opt));
    }

    /// The channel's name, to pass to other processes; empty for an empty handle.
    const std::string& name() const noexcept { return m_core.name(); }
    /// Number of slots (0 for an empty handle).
    std::size_t slots() const noexcept { return m_core.slots(); }
    /// The shape of every slot (empty for an empty handle).
    const shape_type& slot_shape() const noexcept { return m_core.slot_shape(); }
    /// True for a handle without a channel (default-constructed, moved from or reset).
    bool empty() const noexcept { return m_core.empty(); }
    explicit operator bool() const noexcept { return !m_core.empty(); }
    /// Drops this handle, which becomes empty. Slots it loaned or received stay valid.
    void reset() noexcept { m_core.clear(); }

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
        m_core.live("publish");
        if (s.empty() || !m_core.owns(s.m_rec, s.m_freed) || s.m_pid != detail::current_pid()) {
            detail::raise_foreign_slot(name());
        }
        m_core.publish(s.m_index);
        s.forget(); // the channel holds it now
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
    void close() { m_core.close(); }
    /// True once the channel is closed (false for an empty handle).
    bool closed() const noexcept { return m_core.closed(); }

    /// Slots taken back from processes that died while holding them (0 for an empty handle).
    std::uint64_t reclaimed() const noexcept { return m_core.reclaimed(); }
    /// Slots published so far, by every process (0 for an empty handle).
    std::uint64_t published() const noexcept { return m_core.published(); }

    /// The longest a call of this handle spins for a slot or a message before it sleeps (10 µs by
    /// default; only a run of failed spins, a slow stream, shrinks the spin below it). Zero never
    /// spins: every wait sleeps at once, and each wake-up costs a system call on both sides.
    std::chrono::nanoseconds spin_limit() const noexcept { return m_core.spin_limit(); }
    void set_spin_limit(std::chrono::nanoseconds limit) noexcept { m_core.set_spin_limit(limit); }

    /// Hands the name over like shared_ndarray::persist.
    void persist() noexcept { m_core.persist(); }

private:
    explicit channel(detail::channel_core core) noexcept : m_core(std::move(core)) {}

    slot<T> loan_until(std::chrono::steady_clock::time_point deadline)
    {
        const std::size_t i = m_core.loan(deadline);
        return i == detail::channel_core::npos ? slot<T>() : make_slot<T>(i);
    }
    slot<const T> receive_until(std::chrono::steady_clock::time_point deadline)
    {
        const std::size_t i = m_core.receive(deadline);
        return i == detail::channel_core::npos ? slot<const T>() : make_slot<const T>(i);
    }

    template <class U>
    slot<U> make_slot(std::size_t i)
    {
        slot<U> s;
        s.m_array = detail::array_access::make<U>(m_core.map(), m_core.slot_info(dtype_of<T>, i));
        s.m_keep = m_core.map();
        s.m_rec = m_core.record(i);
        s.m_freed = m_core.freed_word();
        s.m_index = i;
        s.m_pid = detail::current_pid();
        return s;
    }

    detail::channel_core m_core;
};

} // namespace ndshm

#endif
