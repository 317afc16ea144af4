/// @file detail/uninterruptible_win32.hpp
/// `ndshm::uninterruptible` on Windows, where Ctrl-C, Ctrl-Break and the console's close, logoff and
/// shutdown events take the place of SIGINT, SIGTERM and SIGHUP. Windows delivers them to the process
/// (on a thread it creates for the purpose), not to a thread, so a guard here defers them for the
/// whole process while any guard exists in any thread.
///
/// How: the first guard installs a console control handler that runs before any the program installed
/// earlier. While guards exist, the handler records the event and blocks, on its own thread, until the
/// last guard ends; then it returns FALSE, so the event goes on to the program's own handlers and
/// finally to the default action (ExitProcess), exactly as if it had come then. The last guard waits
/// until the handler has let the event go before its destructor returns. Outside guards the handler
/// passes every event on at once. Windows itself ends a process a few seconds after a close, logoff or
/// shutdown event whatever its handlers do, so a section must be short to be protected from those.
#ifndef NDSHM_DETAIL_UNINTERRUPTIBLE_WIN32_HPP
#define NDSHM_DETAIL_UNINTERRUPTIBLE_WIN32_HPP

#include "sys.hpp" // windows.h, as sys_win32.hpp includes it

#include <atomic>
#include <mutex>

#include "../error.hpp"

namespace ndshm::detail {

/// The process's guard count and the handler's state.
struct console_guard_state {
    std::mutex mutex;
    unsigned depth = 0;
    HANDLE released = nullptr;   ///< manual-reset: set while no guard exists
    HANDLE passed_on = nullptr;  ///< auto-reset: the handler has let a deferred event go
    std::atomic<int> pending{0}; ///< events waiting for the last guard to end
    bool installed = false;
};

inline console_guard_state& console_guards() noexcept
{
    static console_guard_state s;
    return s;
}

inline BOOL WINAPI deferring_console_handler(DWORD) noexcept
{
    auto& s = console_guards();
    {
        std::lock_guard<std::mutex> g(s.mutex);
        if (s.depth == 0) {
            return FALSE; // no guard: on to the next handler at once
        }
        s.pending.fetch_add(1);
    }
    (void)::WaitForSingleObject(s.released, INFINITE);
    s.pending.fetch_sub(1);
    (void)::SetEvent(s.passed_on);
    return FALSE; // on to the program's handlers and the default action, now that the section is over
}

/// Enters a guarded section; installs the handler on first use. Throws if Windows refuses.
inline void enter_uninterruptible()
{
    auto& s = console_guards();
    std::lock_guard<std::mutex> g(s.mutex);
    if (!s.installed) {
        s.released = ::CreateEventW(nullptr, TRUE, TRUE, nullptr);
        s.passed_on = ::CreateEventW(nullptr, FALSE, FALSE, nullptr);
        if (s.released == nullptr || s.passed_on == nullptr ||
            !::SetConsoleCtrlHandler(deferring_console_handler, TRUE)) {
            const int e = errno_of_win32(::GetLastError());
            raise_errno("uninterruptible", "", e != 0 ? e : EINVAL, "SetConsoleCtrlHandler");
        }
        s.installed = true;
    }
    if (s.depth++ == 0) {
        (void)::ResetEvent(s.released);
    }
}

/// Leaves a guarded section; the last one lets deferred events go and waits until they have gone.
inline void leave_uninterruptible() noexcept
{
    auto& s = console_guards();
    int waiting = 0;
    {
        std::lock_guard<std::mutex> g(s.mutex);
        if (s.depth == 0 || --s.depth != 0) {
            return;
        }
        waiting = s.pending.load();
        (void)::SetEvent(s.released);
    }
    for (int i = 0; i < waiting; ++i) {
        (void)::WaitForSingleObject(s.passed_on, INFINITE);
    }
}

/// True if a console event waits for the guards to end.
inline bool uninterruptible_pending() noexcept { return console_guards().pending.load() > 0; }

} // namespace ndshm::detail

namespace ndshm {

/// Defers Ctrl-C, Ctrl-Break and the console's close, logoff and shutdown events (Windows's SIGINT,
/// SIGTERM and SIGHUP) while it exists; an event that arrives meanwhile is handled when the last
/// guard ends, before its destructor returns. On Windows the events are the process's, so a guard
/// in one thread defers them for all (see detail/uninterruptible_win32.hpp).
class uninterruptible {
public:
    /// @throws error if the console control handler cannot be installed
    uninterruptible() { detail::enter_uninterruptible(); }
    uninterruptible(const uninterruptible&) = delete;
    uninterruptible& operator=(const uninterruptible&) = delete;
    ~uninterruptible() { detail::leave_uninterruptible(); }

    /// True if one of the deferred events arrived and waits for the guards to end.
    static bool signal_pending() noexcept { return detail::uninterruptible_pending(); }
};

} // namespace ndshm

#endif
