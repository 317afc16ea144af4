/// @file detail/wait.hpp
/// Waiting and waking between processes: deadlines, futex waits and wake-ups on words in shared
/// memory, event words that wake only when someone sleeps, and the adaptive spin before a sleep. The
/// lock (sync.hpp), the array queue and the channel wait through these. On Windows the futex calls go
/// to sys_win32.hpp's emulation through the same sys() table.
#ifndef NDSHM_DETAIL_WAIT_HPP
#define NDSHM_DETAIL_WAIT_HPP

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstdint>
#include <ctime>

#ifndef _WIN32
#include <linux/futex.h>
#endif

#include "config.hpp"
#include "sys.hpp"

namespace ndshm::detail {

/// The deadline `timeout` from now on the monotonic clock: now for a timeout of zero or less (a try),
/// time_point::max() (no limit) for one beyond the clock's range. Every timed call of the queue, the
/// channel and the lock computes its deadline here.
inline std::chrono::steady_clock::time_point deadline_in(std::chrono::steady_clock::duration timeout) noexcept
{
    const auto now = std::chrono::steady_clock::now();
    if (timeout <= std::chrono::steady_clock::duration::zero()) {
        return now;
    }
    return timeout >= std::chrono::steady_clock::time_point::max() - now ? std::chrono::steady_clock::time_point::max()
                                                                         : now + timeout;
}

/// Wakes every process waiting on the futex word `word` (a shared, not a private, futex).
inline void futex_wake_all(std::uint32_t* word) noexcept
{
    (void)sys().futex(word, FUTEX_WAKE, static_cast<std::uint32_t>(INT_MAX), nullptr);
}

/// Sleeps while `*word == expected`, at most until `deadline` (time_point::max(): no limit). Returns
/// when woken, when the word differs, on a signal, or at the deadline; callers re-check their
/// condition in every case.
NDSHM_DECL void futex_wait(std::uint32_t* word, std::uint32_t expected,
                           std::chrono::steady_clock::time_point deadline) noexcept;

/// An event word: a 32-bit futex word in shared memory that counts events and says whether anyone
/// sleeps on it, as (count << 1) | sleepers. Signalling costs a system call only when the sleepers bit
/// is set, so a stream whose receiver is awake (or spinning) makes none. A sleeper sets the bit, checks
/// its condition again, then waits on the word's new value: a signal that comes between the check and
/// the wait changes the word, and the wait returns at once. A sleeper killed while it sleeps leaves the
/// bit set, which costs the next signal one spare wake-up and clears it.
inline void event_signal(std::uint32_t& word) noexcept
{
    std::uint32_t v = __atomic_load_n(&word, __ATOMIC_RELAXED);
    while (!__atomic_compare_exchange_n(&word, &v, (v + 2u) & ~1u, false, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) {
    }
    if ((v & 1u) != 0) {
        futex_wake_all(&word);
    }
}

/// Announces a sleeper on an event word; returns the value to pass to event_wait after the caller has
/// checked its condition once more.
inline std::uint32_t event_prepare(std::uint32_t& word) noexcept
{
    std::uint32_t v = __atomic_load_n(&word, __ATOMIC_SEQ_CST);
    while ((v & 1u) == 0 &&
           !__atomic_compare_exchange_n(&word, &v, v | 1u, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
    }
    return v | 1u;
}

/// Sleeps until the event word differs from `prepared` (event_prepare's value), a wake-up, a signal,
/// or the deadline.
inline void event_wait(std::uint32_t& word, std::uint32_t prepared,
                       std::chrono::steady_clock::time_point deadline) noexcept
{
    futex_wait(&word, prepared, deadline);
}

/// One iteration of a busy wait: tells the CPU (and a hyperthread sibling) that this is a spin.
inline void spin_pause() noexcept
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#else
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
#endif
}

/// A bounded, adaptive spin before sleeping, kept per handle: spin up to budget() for the condition,
/// then sleep. A spin is cheaper than a sleep and its wake-up (two system calls and a context switch,
/// tens of microseconds on a virtual machine) whenever the wait ends within the limit, so the budget
/// stays at the limit while waits are short: a spin that succeeds, or a sleep that ended soon
/// (within `short_sleep` limits: the sleep's own wake-up latency counts in it), restores it. Only a
/// run of `failures_to_shrink` spins in a row that all failed (a slow stream, or a peer that is not
/// running) shrinks it, by 4 each time, so that a slow stream costs little CPU. Shrinking on single
/// failures would be wrong: a budget too small to bridge short waits makes both sides sleep, each
/// wake-up then delays the waker, and the stream settles into sleeping on every item.
class spin_policy {
public:
    /// Consecutive failed spins after which the budget shrinks.
    static constexpr std::int64_t failures_to_shrink = 8;
    /// A sleep shorter than this many limits restores the budget.
    static constexpr std::int64_t short_sleep = 10;

    explicit spin_policy(std::chrono::nanoseconds limit = std::chrono::microseconds(10)) noexcept
        : m_limit(limit.count()), m_budget(limit.count())
    {
    }
    spin_policy(const spin_policy& o) noexcept
        : m_limit(o.m_limit.load(relaxed)), m_budget(o.m_budget.load(relaxed)), m_failures(o.m_failures.load(relaxed))
    {
    }
    spin_policy& operator=(const spin_policy& o) noexcept
    {
        m_limit.store(o.m_limit.load(relaxed), relaxed);
        m_budget.store(o.m_budget.load(relaxed), relaxed);
        m_failures.store(o.m_failures.load(relaxed), relaxed);
        return *this;
    }

    std::chrono::nanoseconds limit() const noexcept { return std::chrono::nanoseconds(m_limit.load(relaxed)); }
    void set_limit(std::chrono::nanoseconds limit) noexcept
    {
        const auto ns = std::max<std::int64_t>(limit.count(), 0);
        m_limit.store(ns, relaxed);
        m_budget.store(ns, relaxed);
        m_failures.store(0, relaxed);
    }
    std::chrono::nanoseconds budget() const noexcept { return std::chrono::nanoseconds(m_budget.load(relaxed)); }

    /// Spins until `ready()` or the budget (or `deadline`) runs out; returns whether it became ready.
    template <class Ready>
    bool spin(Ready&& ready, std::chrono::steady_clock::time_point deadline) noexcept
    {
        const std::int64_t budget = m_budget.load(relaxed);
        if (budget <= 0) {
            return false;
        }
        const auto start = std::chrono::steady_clock::now();
        const auto end = std::min(deadline, start + std::chrono::nanoseconds(budget));
        for (unsigned i = 1;; ++i) {
            if (ready()) {
                succeeded();
                return true;
            }
            spin_pause();
            if ((i & 31u) == 0 && std::chrono::steady_clock::now() >= end) {
                failed(budget);
                return false;
            }
        }
    }

    /// After a sleep: `waited` is how long the whole wait took, spin, sleep and wake-up.
    void slept(std::chrono::nanoseconds waited) noexcept
    {
        const std::int64_t limit = m_limit.load(relaxed);
        if (waited.count() <= short_sleep * limit) {
            succeeded();
        }
    }

private:
    void succeeded() noexcept
    {
        m_failures.store(0, relaxed);
        const std::int64_t limit = m_limit.load(relaxed);
        if (m_budget.load(relaxed) != limit) {
            m_budget.store(limit, relaxed);
        }
    }
    void failed(std::int64_t budget) noexcept
    {
        if (m_failures.fetch_add(1, relaxed) + 1 >= failures_to_shrink) {
            m_failures.store(0, relaxed);
            m_budget.store(budget / 4, relaxed);
        }
    }

    static constexpr std::memory_order relaxed = std::memory_order_relaxed;
    // Per handle, shared by the threads that use it: atomics, relaxed (a budget is only a hint).
    std::atomic<std::int64_t> m_limit;
    std::atomic<std::int64_t> m_budget;
    std::atomic<std::int64_t> m_failures{0};
};

} // namespace ndshm::detail

#if NDSHM_DEFINITIONS
namespace ndshm::detail {

void futex_wait(std::uint32_t* word, std::uint32_t expected, std::chrono::steady_clock::time_point deadline) noexcept
{
    struct timespec rel {};
    struct timespec* timeout = nullptr;
    if (deadline != std::chrono::steady_clock::time_point::max()) {
        const auto left = deadline - std::chrono::steady_clock::now();
        const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
        if (ns <= 0) {
            return;
        }
        rel.tv_sec = static_cast<time_t>(ns / 1000000000);
        rel.tv_nsec = static_cast<long>(ns % 1000000000);
        timeout = &rel;
    }
    // FUTEX_WAIT's timeout is relative and measured on the monotonic clock.
    (void)sys().futex(word, FUTEX_WAIT, expected, timeout);
}

} // namespace ndshm::detail
#endif // NDSHM_DEFINITIONS

#endif
