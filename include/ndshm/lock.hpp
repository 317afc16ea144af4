/// @file lock.hpp
/// `ndshm::array_lock`: the per-array lock that lives in a segment's trailer (detail/sync.hpp), usable
/// with `std::lock_guard` and `std::unique_lock`.
#ifndef NDSHM_LOCK_HPP
#define NDSHM_LOCK_HPP

#include <cerrno>
#include <chrono>
#include <memory>
#include <string>

#include "detail/config.hpp"
#include "detail/segment_impl.hpp"
#include "detail/sync.hpp"
#include "detail/trailer.hpp"
#include "error.hpp"
#include "shared_ndarray.hpp"

namespace ndshm {

/// The lock of one shared array, shared by every process that has the array: ndshm's own lock in the
/// segment's trailer, set up when ndshm creates the segment (detail/sync.hpp says why it is not a
/// pthread mutex).
///
/// It meets the C++ Lockable and TimedLockable requirements:
///
///     ndshm::array_lock lock(a);                  // a: any shared_ndarray<T> of the segment
///     std::lock_guard<ndshm::array_lock> g(lock); // or std::unique_lock
///
/// If a process dies while it holds the lock, the next `lock()` (or successful `try_lock()`) in any
/// process acquires it normally and `previous_owner_died()` then returns true: the data the dead
/// holder was changing may be half-written, and the new holder decides how to repair it. The lock
/// itself is usable again at once, for everyone.
///
/// The lock belongs to the thread that locked it (unlock it in the same thread). Locking it twice
/// from one thread is an error, not a deadlock. Each thread should use its own array_lock object;
/// they all lock the same lock.
///
/// Bounds: `try_lock()` never waits; `try_lock_for`/`try_lock_until` return by their deadline whatever
/// the holder does (a stopped holder included). `lock()` waits as long as a running holder holds the
/// lock, but throws `ndshm::error` naming the holder once the holder has been stopped (SIGSTOP,
/// Ctrl-Z, a debugger) for 10 seconds. Lock bytes overwritten by something other than ndshm are a
/// `format_error`, never a crash or a hang.
class array_lock {
public:
    /// The lock of `a`'s segment. Keeps the mapping alive as long as this object exists.
    /// @throws error if `a` is empty, is a foreign segment (made by NumPy or another tool: no ndshm
    /// trailer, so no lock), was created without a lock, or is mapped read-only.
    template <class T>
    explicit array_lock(const shared_ndarray<T>& a) : m_map(detail::array_access::mapping_of(a))
    {
        find_lock();
    }

    array_lock(const array_lock&) = delete;
    array_lock& operator=(const array_lock&) = delete;

    /// Releases the lock if this object still holds it. Never throws.
    ~array_lock()
    {
        if (m_held) {
            (void)detail::unlock(*m_lock);
        }
    }

    /// Blocks until this thread holds the lock. If its holder died, acquires it anyway and
    /// previous_owner_died() returns true.
    /// @throws error if this thread already holds it, or the holder has been stopped for 10 s (the
    /// message names it); format_error if the lock's bytes are corrupt
    void lock() { (void)acquire("lock", std::chrono::steady_clock::time_point::max()); }

    /// Takes the lock if it is free (or its holder died); returns false if someone holds it.
    /// @throws error if this thread already holds it; format_error if the lock's bytes are corrupt
    bool try_lock() { return acquire("try_lock", std::chrono::steady_clock::time_point::min()); }

    /// Like lock(), but gives up after `timeout` and returns false.
    template <class Rep, class Period>
    bool try_lock_for(const std::chrono::duration<Rep, Period>& timeout)
    {
        return try_lock_until(std::chrono::steady_clock::now() +
                              std::chrono::ceil<std::chrono::steady_clock::duration>(timeout));
    }

    /// Like lock(), but gives up at `deadline` and returns false.
    template <class Clock, class Duration>
    bool try_lock_until(const std::chrono::time_point<Clock, Duration>& deadline)
    {
        auto steady = detail::deadline_in(
            std::chrono::ceil<std::chrono::steady_clock::duration>(deadline - Clock::now()));
        if (steady == std::chrono::steady_clock::time_point::max()) {
            steady -= std::chrono::hours(1); // still a deadline: never the untimed wait's rules
        }
        return acquire("try_lock_until", steady);
    }

    /// Releases the lock.
    /// @throws error if this thread does not hold it
    void unlock()
    {
        if (!m_held) {
            raise_unheld();
        }
        const bool ok = detail::unlock(*m_lock);
        m_held = false;
        if (!ok) {
            raise_wrong_thread();
        }
    }

    /// True if the last acquisition through this object found that the previous holder had died while
    /// holding the lock (so the data it protects may be half-updated).
    bool previous_owner_died() const noexcept { return m_owner_died; }

    /// True while this object holds the lock.
    bool owns_lock() const noexcept { return m_held; }

    /// The name of the segment whose lock this is.
    const std::string& name() const noexcept { return m_map->name(); }

private:
    /// Checks that the segment of m_map has a usable lock (see the constructor) and points m_lock at it.
    NDSHM_DECL void find_lock();
    NDSHM_DECL bool acquire(const char* op, std::chrono::steady_clock::time_point deadline);
    /// unlock() without holding the lock.
    [[noreturn, gnu::cold]] NDSHM_DECL void raise_unheld() const;
    /// unlock() that the lock refused: another thread holds it, or its bytes were overwritten.
    [[noreturn, gnu::cold]] NDSHM_DECL void raise_wrong_thread() const;

    std::shared_ptr<detail::mapping> m_map;
    detail::lock_area* m_lock = nullptr;
    bool m_held = false;
    bool m_owner_died = false;
};

} // namespace ndshm

#if NDSHM_DEFINITIONS
namespace ndshm {

void array_lock::find_lock()
{
    const std::string op = "array_lock";
    if (!m_map) {
        detail::raise<error>(op, "", "the shared_ndarray is empty", "pass a handle that holds a segment",
                             detail::errno_code(EINVAL));
    }
    detail::trailer* t = m_map->get_trailer();
    if (t == nullptr) {
        detail::raise<error>(op, m_map->name(),
                             "the segment has no ndshm trailer (NumPy or another tool made it), so it has "
                             "no lock",
                             "create the array with ndshm to get a lock, or synchronise some other way",
                             detail::errno_code(ENOTSUP));
    }
    if ((detail::load_acquire(t->flags) & detail::flag_lock) == 0) {
        detail::raise<error>(op, m_map->name(), "the segment was created without a lock",
                             "recreate it with this version of ndshm", detail::errno_code(ENOTSUP));
    }
    static_assert(sizeof t->lock == sizeof(detail::lock_area), "the trailer's lock area holds one lock");
    if (!m_map->writable()) {
        detail::raise<error>(op, m_map->name(), "the segment is mapped read-only, and locking writes to it",
                             "attach it as a writable shared_ndarray<T> to lock it", detail::errno_code(EACCES));
    }
    m_lock = reinterpret_cast<detail::lock_area*>(t->lock);
}

bool array_lock::acquire(const char* op, std::chrono::steady_clock::time_point deadline)
{
    const std::string what = std::string(op) + " the lock of";
    const detail::lock_status st = detail::lock_until(*m_lock, deadline, {what, m_map->name(), "the lock"});
    if (st == detail::lock_status::timed_out) {
        return false;
    }
    m_held = true;
    m_owner_died = st == detail::lock_status::owner_died;
    return true;
}

void array_lock::raise_unheld() const
{
    detail::raise<error>("unlock the lock of", m_map->name(), "this array_lock does not hold it",
                         "unlock it once, after locking it", detail::errno_code(EPERM));
}

void array_lock::raise_wrong_thread() const
{
    detail::raise<error>("unlock the lock of", m_map->name(),
                         "the calling thread does not hold it (it was locked in another thread, or its bytes "
                         "were overwritten meanwhile)",
                         "unlock it in the thread that locked it", detail::errno_code(EPERM));
}

} // namespace ndshm
#endif // NDSHM_DEFINITIONS

#endif
