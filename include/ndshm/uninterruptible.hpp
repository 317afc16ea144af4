/// @file uninterruptible.hpp
/// `ndshm::uninterruptible`: an RAII guard that defers SIGINT, SIGTERM and SIGHUP during a critical
/// section (publishing a segment, an atomic save) and delivers them when the section ends.
#ifndef NDSHM_UNINTERRUPTIBLE_HPP
#define NDSHM_UNINTERRUPTIBLE_HPP

#ifdef _WIN32
// Console control events instead of signals.
#include "detail/uninterruptible_win32.hpp"
#else

#include <cerrno>

#include <signal.h>

#include "detail/config.hpp"
#include "error.hpp"

namespace ndshm {

/// Defers SIGINT, SIGTERM and SIGHUP for the calling thread while it exists. A signal that arrives
/// meanwhile stays pending and is delivered when the guard ends (its handler runs then, or the default
/// action, such as termination, takes place then), never in the middle of the section.
///
///     {
///         ndshm::uninterruptible guard; // Ctrl-C now waits
///         write_file(tmp); std::rename(tmp, final);
///     }                                 // a Ctrl-C that came meanwhile is delivered here
///
/// Guards nest: only the outermost one, when it ends, unblocks the signals (an inner guard, or a
/// guard created while the calling code had already blocked them, leaves them blocked). Other signals
/// and SIGKILL are not affected. The signal mask is per thread: in a multi-threaded program a signal
/// sent to the process may be delivered to another thread that does not block it, so block these
/// signals in every thread (or in a dedicated signal thread) if that matters.
class uninterruptible {
public:
    /// Blocks SIGINT, SIGTERM and SIGHUP in the calling thread.
    /// @throws error if the signal mask cannot be changed (it can only fail on invalid arguments)
    NDSHM_DECL uninterruptible();

    uninterruptible(const uninterruptible&) = delete;
    uninterruptible& operator=(const uninterruptible&) = delete;

    /// Unblocks what the constructor blocked; a deferred signal is delivered before this returns.
    ~uninterruptible() { (void)::pthread_sigmask(SIG_UNBLOCK, &m_unblock, nullptr); }

    /// True if one of the deferred signals arrived and waits for the guard to end (for example to stop
    /// a long critical section early, at a safe point).
    NDSHM_DECL static bool signal_pending() noexcept;

private:
    static constexpr int deferred[3] = {SIGINT, SIGTERM, SIGHUP};

    static void deferred_set(sigset_t& set) noexcept
    {
        ::sigemptyset(&set);
        for (const int sig : deferred) {
            ::sigaddset(&set, sig);
        }
    }

    sigset_t m_unblock;
};

} // namespace ndshm

#if NDSHM_DEFINITIONS
namespace ndshm {

uninterruptible::uninterruptible()
{
    sigset_t set;
    deferred_set(set);
    sigset_t before;
    if (const int r = ::pthread_sigmask(SIG_BLOCK, &set, &before); r != 0) {
        detail::raise_errno("uninterruptible", "", r, "pthread_sigmask");
    }
    // Unblock on exit only what this guard blocked: an enclosing guard (or the caller) keeps its own.
    ::sigemptyset(&m_unblock);
    for (const int sig : deferred) {
        if (::sigismember(&before, sig) == 0) {
            ::sigaddset(&m_unblock, sig);
        }
    }
}

bool uninterruptible::signal_pending() noexcept
{
    sigset_t pending;
    if (::sigpending(&pending) != 0) {
        return false;
    }
    for (const int sig : deferred) {
        if (::sigismember(&pending, sig) == 1) {
            return true;
        }
    }
    return false;
}

} // namespace ndshm
#endif // NDSHM_DEFINITIONS

#endif // _WIN32

#endif
