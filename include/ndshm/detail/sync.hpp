/// @file detail/sync.hpp
/// Interprocess synchronisation in shared memory: a process-shared robust POSIX mutex (the lock in
/// the trailer, the array queue's and the channel's mutexes) and futex-based wake-ups (their waits).
///
/// Why futexes and not process-shared condition variables: glibc (2.36 here) keeps per-waiter
/// bookkeeping inside a pthread_cond_t, and a waiter killed while it waits leaves it behind, after
/// which a later signal or broadcast can block forever. A futex word holds no waiter state (the kernel
/// keeps the wait list and cleans it up when a process dies), so a queue survives `kill -9` of any of
/// its users. The robust mutex covers the other half: a holder that dies hands the lock to the next
/// locker with EOWNERDEAD instead of blocking everyone.
#ifndef NDSHM_DETAIL_SYNC_HPP
#define NDSHM_DETAIL_SYNC_HPP

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <new>

#include <linux/futex.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

// pthread_mutex_clocklock (glibc 2.30+) locks on the monotonic clock; ThreadSanitizer does not
// intercept it (gcc 12, clang 14), so sanitizer builds fall back to pthread_mutex_timedlock.
#if defined(__SANITIZE_THREAD__)
#define NDSHM_HAVE_CLOCKLOCK 0
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define NDSHM_HAVE_CLOCKLOCK 0
#endif
#endif
#if !defined(NDSHM_HAVE_CLOCKLOCK)
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 30))
#define NDSHM_HAVE_CLOCKLOCK 1
#else
#define NDSHM_HAVE_CLOCKLOCK 0
#endif
#endif

namespace ndshm::detail {

/// Bytes reserved for a robust mutex in shared memory (the trailer's lock area).
inline constexpr std::size_t robust_mutex_room = 64;
static_assert(sizeof(pthread_mutex_t) <= robust_mutex_room, "a pthread_mutex_t must fit the trailer's lock area");

/// Initialises a process-shared, robust, error-checking mutex in `where` (at least 64 bytes, aligned
/// for pthread_mutex_t). Returns false if the system refuses one of the attributes.
inline bool init_robust_mutex(void* where) noexcept
{
    pthread_mutexattr_t attr;
    if (::pthread_mutexattr_init(&attr) != 0) {
        return false;
    }
    const bool ok = ::pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED) == 0 &&
                    ::pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST) == 0 &&
                    ::pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ERRORCHECK) == 0 &&
                    ::pthread_mutex_init(::new (where) pthread_mutex_t, &attr) == 0;
    (void)::pthread_mutexattr_destroy(&attr);
    return ok;
}

/// What a robust lock attempt found.
enum class lock_status {
    acquired,   ///< locked; the previous holder released it normally
    owner_died, ///< locked; the previous holder died holding it (the mutex was made consistent again)
    busy,       ///< try_lock: someone else holds it
    timed_out,  ///< timed lock: the deadline passed
    deadlock,   ///< this thread already holds it
    failed,     ///< another error; errno-style code in the int out-parameter
};

/// Turns a pthread lock result into a lock_status, making the mutex consistent after EOWNERDEAD.
inline lock_status robust_result(pthread_mutex_t* m, int r, int& err) noexcept
{
    err = r;
    switch (r) {
    case 0:
        return lock_status::acquired;
    case EOWNERDEAD:
        // The holder died: we hold the lock now. Mark it usable again, so that unlocking it does not
        // make it permanently unrecoverable (ENOTRECOVERABLE) for everyone.
        err = ::pthread_mutex_consistent(m);
        return err == 0 ? lock_status::owner_died : lock_status::failed;
    case EBUSY:
        return lock_status::busy;
    case ETIMEDOUT:
        return lock_status::timed_out;
    case EDEADLK:
        return lock_status::deadlock;
    default:
        return lock_status::failed;
    }
}

inline lock_status robust_lock(pthread_mutex_t* m, int& err) noexcept
{
    return robust_result(m, ::pthread_mutex_lock(m), err);
}

inline lock_status robust_try_lock(pthread_mutex_t* m, int& err) noexcept
{
    return robust_result(m, ::pthread_mutex_trylock(m), err);
}

/// Locks with a deadline on the monotonic clock (where glibc has pthread_mutex_clocklock, 2.30+), else
/// on the real-time clock.
inline lock_status robust_lock_until(pthread_mutex_t* m, std::chrono::steady_clock::time_point deadline,
                                     int& err) noexcept
{
    const auto left = deadline - std::chrono::steady_clock::now();
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
#if NDSHM_HAVE_CLOCKLOCK
    const clockid_t clock = CLOCK_MONOTONIC;
#else
    const clockid_t clock = CLOCK_REALTIME;
#endif
    struct timespec ts {};
    ::clock_gettime(clock, &ts);
    if (ns > 0) {
        const long long total = static_cast<long long>(ts.tv_nsec) + ns % 1000000000;
        ts.tv_sec += static_cast<time_t>(ns / 1000000000 + total / 1000000000);
        ts.tv_nsec = static_cast<long>(total % 1000000000);
    }
#if NDSHM_HAVE_CLOCKLOCK
    return robust_result(m, ::pthread_mutex_clocklock(m, clock, &ts), err);
#else
    return robust_result(m, ::pthread_mutex_timedlock(m, &ts), err);
#endif
}

inline int robust_unlock(pthread_mutex_t* m) noexcept { return ::pthread_mutex_unlock(m); }

/// Wakes every process waiting on the futex word `word` (a shared, not a private, futex).
inline void futex_wake_all(std::uint32_t* word) noexcept
{
    (void)::syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
}

/// Sleeps while `*word == expected`, at most until `deadline` (time_point::max(): no limit). Returns
/// when woken, when the word differs, on a signal, or at the deadline; callers re-check their
/// condition in every case.
inline void futex_wait(std::uint32_t* word, std::uint32_t expected,
                       std::chrono::steady_clock::time_point deadline) noexcept
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
    (void)::syscall(SYS_futex, word, FUTEX_WAIT, expected, timeout, nullptr, 0);
}

} // namespace ndshm::detail

#undef NDSHM_HAVE_CLOCKLOCK

#endif
