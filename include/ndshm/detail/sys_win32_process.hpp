/// @file detail/sys_win32_process.hpp
/// Processes and liveness on Windows (see detail/sys_win32.hpp): a process or thread id opened for a
/// query (a lock records a thread id, and Windows ids name processes and threads in one table), what
/// /proc/ID/stat tells on Linux (running or exited, and the start time), kill, and this thread's id.
#ifndef NDSHM_DETAIL_SYS_WIN32_PROCESS_HPP
#define NDSHM_DETAIL_SYS_WIN32_PROCESS_HPP

#include "sys_win32_posix.hpp" // windows.h

#include <cerrno>
#include <cstdint>

namespace ndshm::detail {
namespace sys_win32 {

/// A process or thread id, opened for a query: Windows ids name processes and threads in one table, so
/// an id is one or the other. Returns the handle, or nullptr with `err` set (ESRCH: no such id).
inline HANDLE open_process_or_thread(std::uint64_t id, bool& is_thread, DWORD extra_access, int& err) noexcept
{
    err = 0;
    is_thread = false;
    const DWORD pid = static_cast<DWORD>(id);
    HANDLE h = ::OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION | extra_access, FALSE, pid);
    if (h != nullptr) {
        return h;
    }
    DWORD e = ::GetLastError();
    if (e == ERROR_INVALID_PARAMETER && extra_access == 0) {
        h = ::OpenThread(THREAD_QUERY_LIMITED_INFORMATION, FALSE, pid);
        if (h != nullptr) {
            is_thread = true;
            return h;
        }
        e = ::GetLastError();
    }
    err = e == ERROR_INVALID_PARAMETER ? ESRCH : (e == ERROR_ACCESS_DENIED ? EPERM : errno_of_win32(e));
    return nullptr;
}

/// What /proc/ID/stat tells on Linux, for liveness.hpp: state 'R' for a running process or thread,
/// 'Z' for one that exited (a handle still holds its id), and the creation time (100 ns units since
/// 1601) as its start time. Returns 0 or an errno value (ENOENT: no such id).
inline int process_stat(std::uint64_t id, char& state, std::uint64_t& start) noexcept
{
    bool thread = false;
    int err = 0;
    HANDLE h = open_process_or_thread(id, thread, 0, err);
    if (h == nullptr) {
        return err == ESRCH ? ENOENT : err;
    }
    FILETIME created{}, exited{}, kernel{}, user{};
    DWORD code = 0;
    const BOOL ok = thread ? ::GetThreadTimes(h, &created, &exited, &kernel, &user) && ::GetExitCodeThread(h, &code)
                           : ::GetProcessTimes(h, &created, &exited, &kernel, &user) && ::GetExitCodeProcess(h, &code);
    const DWORD e = ::GetLastError();
    ::CloseHandle(h);
    if (!ok) {
        return errno_of_win32(e);
    }
    state = code == STILL_ACTIVE ? 'R' : 'Z';
    start = std::uint64_t(created.dwHighDateTime) << 32 | created.dwLowDateTime;
    return 0;
}

/// kill(pid, 0): whether the id names a live process or thread; kill(pid, sig): TerminateProcess.
inline int kill(pid_t pid, int sig)
{
    if (pid <= 0) {
        return fail_errno(EINVAL);
    }
    bool thread = false;
    int err = 0;
    HANDLE h = open_process_or_thread(static_cast<std::uint64_t>(pid), thread,
                                      sig == 0 ? 0 : static_cast<DWORD>(PROCESS_TERMINATE), err);
    if (h == nullptr) {
        return fail_errno(err);
    }
    DWORD code = 0;
    BOOL ok = thread ? ::GetExitCodeThread(h, &code) : ::GetExitCodeProcess(h, &code);
    int r = 0;
    if (!ok) {
        r = fail_win32();
    } else if (code != STILL_ACTIVE) {
        r = fail_errno(ESRCH); // exited: an open handle keeps its id, as a zombie keeps its pid
    } else if (sig != 0) {
        r = ::TerminateProcess(h, 128u + static_cast<unsigned>(sig)) ? 0 : fail_win32();
    }
    ::CloseHandle(h);
    return r;
}

} // namespace sys_win32

/// This thread's id (the lock records it): Windows thread ids share one table with process ids.
inline std::uint32_t current_tid() noexcept { return static_cast<std::uint32_t>(::GetCurrentThreadId()); }

} // namespace ndshm::detail

#endif
