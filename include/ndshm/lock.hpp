/// @file lock.hpp
/// `ndshm::array_lock`: the optional per-array lock that lives in a segment's trailer, a
/// process-shared robust mutex usable with `std::lock_guard` and `std::unique_lock`.
#ifndef NDSHM_LOCK_HPP
#define NDSHM_LOCK_HPP

#include <cerrno>
#include <chrono>
#include <memory>
#include <string>

#include <pthread.h>

#include "detail/segment_impl.hpp"
#include "detail/sync.hpp"
#include "detail/trailer.hpp"
#include "error.hpp"
#include "shared_ndarray.hpp"

namespace ndshm {

/// The lock of one shared array, shared by every process that has the array: a process-shared,
/// robust mutex that ndshm sets up in the segment's trailer when it creates the segment.
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
/// they all lock the same mutex.
class array_lock {
public:
    /// The lock of `a`'s segment. Keeps the mapping alive as long as this object exists.
    /// @throws error if `a` is empty, is a foreign segment (made by NumPy or another tool: no ndshm
    /// trailer, so no lock), was created without a lock, or is mapped read-only.
    template <class T>
    explicit array_lock(const shared_ndarray<T>& a) : m_map(detail::array_access::mapping_of(a))
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
        if (!m_map->writable()) {
            detail::raise<error>(op, m_map->name(), "the segment is mapped read-only, and locking writes to it",
                                 "attach it as a writable shared_ndarray<T> to lock it", detail::errno_code(EACCES));
        }
        m_mutex = reinterpret_cast<pthread_mutex_t*>(t->lock);
    }

    array_lock(const array_lock&) = delete;
    array_lock& operator=(const array_lock&) = delete;

    /// Releases the lock if this object still holds it. Never throws.
    ~array_lock()
    {
        if (m_held) {
            (void)detail::robust_unlock(m_mutex);
        }
    }

    /// Blocks until this thread holds the lock. If its holder died, acquires it anyway and
    /// previous_owner_died() returns true.
    /// @throws error if this thread already holds it, or the system refuses
    void lock()
    {
        int err = 0;
        finish("lock", detail::robust_lock(m_mutex, err), err);
    }

    /// Takes the lock if it is free (or its holder died); returns false if someone holds it.
    /// @throws error if this thread already holds it, or the system refuses
    bool try_lock()
    {
        int err = 0;
        return finish("try_lock", detail::robust_try_lock(m_mutex, err), err);
    }

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
        const auto steady = std::chrono::steady_clock::now() +
                            std::chrono::ceil<std::chrono::steady_clock::duration>(deadline - Clock::now());
        int err = 0;
        return finish("try_lock_until", detail::robust_lock_until(m_mutex, steady, err), err);
    }

    /// Releases the lock.
    /// @throws error if this thread does not hold it
    void unlock()
    {
        // Refused before the mutex is touched: unlocking a mutex one does not hold is undefined for
        // the checkers (ThreadSanitizer) even where the error-checking mutex reports EPERM.
        const int r = m_held ? detail::robust_unlock(m_mutex) : EPERM;
        if (r != 0) {
            detail::raise_errno("unlock the lock of", m_map->name(), r,
                                "pthread_mutex_unlock (unlock it in the thread that locked it, once)");
        }
        m_held = false;
    }

    /// True if the last acquisition through this object found that the previous holder had died while
    /// holding the lock (so the data it protects may be half-updated).
    bool previous_owner_died() const noexcept { return m_owner_died; }

    /// True while this object holds the lock.
    bool owns_lock() const noexcept { return m_held; }

    /// The name of the segment whose lock this is.
    const std::string& name() const noexcept { return m_map->name(); }

private:
    bool finish(const char* op, detail::lock_status st, int err)
    {
        switch (st) {
        case detail::lock_status::acquired:
        case detail::lock_status::owner_died:
            m_held = true;
            m_owner_died = st == detail::lock_status::owner_died;
            return true;
        case detail::lock_status::busy:
        case detail::lock_status::timed_out:
            return false;
        case detail::lock_status::deadlock:
            detail::raise<error>(std::string(op) + " the lock of", m_map->name(), "this thread already holds it",
                                 "unlock it first; the lock is not recursive", detail::errno_code(EDEADLK));
        case detail::lock_status::failed:
            break;
        }
        detail::raise_errno(std::string(op) + " the lock of", m_map->name(), err, "pthread_mutex_lock");
    }

    std::shared_ptr<detail::mapping> m_map;
    pthread_mutex_t* m_mutex = nullptr;
    bool m_held = false;
    bool m_owner_died = false;
};

} // namespace ndshm

#endif
