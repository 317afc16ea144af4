/// @file detail/liveness.hpp
/// Whether a process (or thread) recorded in shared memory still runs. One rule for every place that
/// decides it: `ndshm gc` and `inspect` (a segment's creator), the channel (slots held by a process
/// that died), the locks in shared memory (a holder that died), the store and the queue (through gc).
///
/// The rule: a process counts as dead only on positive evidence. `kill(pid, 0)` failing with ESRCH,
/// a zombie in /proc/PID/stat, or a start time there that differs from the one recorded (the pid was
/// reused). Anything else that goes wrong while looking (EMFILE or ENFILE opening /proc, ENOMEM, an
/// unreadable or unparsable entry, no /proc at all) means "unknown", and every caller keeps what an
/// unknown process holds. A process that runs short of descriptors must never take that for the
/// death of another one.
///
/// Every system call here goes through sys(), so tests can make each of them fail.
#ifndef NDSHM_DETAIL_LIVENESS_HPP
#define NDSHM_DETAIL_LIVENESS_HPP

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <system_error>
#include <utility>

#include <atomic>

#include <pthread.h>
#include <sys/types.h>
#include <unistd.h>

#include "config.hpp"
#include "sys.hpp"

namespace ndshm::detail {

/// Counts the forks of this process image: a pthread_atfork handler bumps it in every child, so that
/// values cached per process (the pid, start time, thread identity) are computed again after a fork.
inline std::atomic<std::uint64_t>& fork_generation() noexcept
{
    static std::atomic<std::uint64_t> generation{0};
    return generation;
}

inline void count_fork_in_child() noexcept { fork_generation().fetch_add(1, std::memory_order_relaxed); }

/// True once the fork counter is installed (once per process; fails only if pthread_atfork is out of memory).
inline bool fork_generation_tracked() noexcept
{
#ifdef _WIN32
    return true; // no fork: a process keeps its pid
#else
    static const bool tracked = ::pthread_atfork(nullptr, nullptr, &count_fork_in_child) == 0;
    return tracked;
#endif
}

/// This process's pid without a system call on every use: getpid() is a real system call in glibc,
/// and the queue's and the channel's hot paths ask on every operation. Computed again after a fork
/// (see fork_generation). A process created without fork() running the atfork handlers (a raw
/// clone(2)) must not use handles it inherited.
inline pid_t current_pid() noexcept
{
    struct cached_pid {
        std::uint64_t generation = ~std::uint64_t(0);
        pid_t pid = 0;
    };
    thread_local cached_pid cached;
    if (!fork_generation_tracked()) {
        return ::getpid();
    }
    const std::uint64_t g = fork_generation().load(std::memory_order_relaxed);
    if (cached.generation != g) {
        cached.pid = ::getpid();
        cached.generation = g;
    }
    return cached.pid;
}

/// The largest pid or tid Linux hands out (PID_MAX_LIMIT on 64-bit systems): larger values recorded
/// in shared memory name no process.
inline constexpr std::uint64_t pid_max_limit = std::uint64_t(1) << 22;

/// True if `pid` could name a process (or thread) on Linux.
constexpr bool valid_pid(std::uint64_t pid) noexcept { return pid != 0 && pid <= pid_max_limit; }

/// What /proc/PID/stat says about a process or thread.
struct proc_stat {
    char state = '?';        ///< field 3: R, S, D, T (stopped), t (tracing stop), Z (zombie), X, ...
    std::uint64_t start = 0; ///< field 22: start time, clock ticks since boot
};

/// Opens the /proc file `path` for reading through sys(): a descriptor, or -1 with errno set.
inline int open_proc_file(const char* path) noexcept
{
    return retry_eintr([&] { return sys().openat(AT_FDCWD, path, O_RDONLY | O_CLOEXEC, 0); });
}

/// Reads from `fd` into `buf` until `n` bytes are read or the file ends, through sys(), retrying EINTR.
/// Returns the count read, or -1 with errno set.
NDSHM_DECL ssize_t read_up_to(int fd, char* buf, std::size_t n) noexcept;

/// Reads the whole text file `path` (a /proc file) into `out` through sys(), at most `limit` bytes.
/// Returns 0 or the errno that stopped it (ESRCH, when the process went away, is given as ENOENT).
NDSHM_DECL int read_proc_file(const char* path, std::string& out, std::size_t limit = std::size_t(64) << 20);

/// Reads /proc/PID/stat (a pid or a tid) through sys(). Returns 0, or the errno that stopped it
/// (ENOENT: no such entry; EILSEQ: the entry did not parse). Opens one descriptor for the read.
NDSHM_DECL int read_proc_stat(std::uint64_t pid, proc_stat& out) noexcept;

/// Start time of process (or thread) `pid` in clock ticks since boot, or 0 if it cannot be read.
/// Together with the pid it identifies a process even after the pid is reused.
inline std::uint64_t process_start_time(std::uint64_t pid) noexcept
{
    proc_stat st;
    return read_proc_stat(pid, st) == 0 ? st.start : 0;
}

inline std::uint64_t process_start_time(pid_t pid) noexcept
{
    return pid > 0 ? process_start_time(static_cast<std::uint64_t>(pid)) : 0;
}

/// A process as the trailer records it: pid and start time (clock ticks since boot).
struct process_identity {
    std::uint64_t pid = 0;
    std::uint64_t start = 0;
};

/// This process's identity, computed once per thread and process (a forked child computes its own). A
/// start time that could not be read (say, with no descriptor free) is 0, and is read again next time.
inline process_identity this_process()
{
    thread_local process_identity cached;
    const auto me = static_cast<std::uint64_t>(current_pid());
    if (cached.pid != me || cached.start == 0) {
        cached = process_identity{me, process_start_time(me)};
    }
    return cached;
}

enum class liveness : std::uint8_t {
    unknown, ///< it could not be told (no positive evidence either way): keep what it holds
    alive,   ///< a process with that pid runs (with the recorded start time, if one was recorded)
    dead,    ///< positive evidence: no such process, a zombie, or the pid now names another process
};

/// The verdict on one pid, and how it was reached.
struct process_check {
    liveness state = liveness::unknown;
    std::string detail;      ///< e.g. "no process 1234", "cannot read /proc/1234/stat: Too many open files"
    char proc_state = '?';   ///< the state letter from /proc, if it was read
    std::uint64_t start = 0; ///< the start time from /proc, if it was read
    /// True if the process is stopped (SIGSTOP, Ctrl-Z, a debugger): alive, but not running.
    bool stopped() const noexcept { return state == liveness::alive && (proc_state == 'T' || proc_state == 't'); }
};

/// What kill(pid, 0) and /proc said about one pid; cached by list_segments so that many segments of
/// one creator cost one look.
struct proc_probe {
    int kill_err = 0; ///< 0 (exists), or kill's errno
    int stat_err = 0; ///< 0, or read_proc_stat's errno
    proc_stat stat;
};

NDSHM_DECL proc_probe probe_process(std::uint64_t pid) noexcept;

/// Probes by pid.
using proc_cache = std::map<std::uint64_t, proc_probe>;

/// Applies the positive-evidence rule to a probe of `pid`, recorded with start time `start` (0: none
/// was recorded).
NDSHM_DECL process_check judge_process(std::uint64_t pid, std::uint64_t start, const proc_probe& p);

/// Whether process (or thread) `pid`, recorded with start time `start` (0: none recorded), still
/// runs. `cache` (optional) remembers each pid's probe.
NDSHM_DECL process_check check_process(std::uint64_t pid, std::uint64_t start, proc_cache* cache = nullptr);

/// True if the holder recorded as `pid` with start time `start` (the holder of a channel slot, of a
/// pooled queue segment) holds nothing any more: the record names no valid pid, or that process is dead
/// by the rule above. What it held may be taken back. `check`, if given, receives the verdict.
NDSHM_DECL bool holder_gone(std::uint64_t pid, std::uint64_t start, proc_cache* cache, process_check* check = nullptr);

/// The inode of this process's pid namespace (/proc/self/ns/pid), 0 if unknown. Pids recorded by a
/// process of another pid namespace mean nothing here.
NDSHM_DECL std::uint64_t pid_namespace_id() noexcept;

} // namespace ndshm::detail

#if NDSHM_DEFINITIONS
namespace ndshm::detail {

ssize_t read_up_to(int fd, char* buf, std::size_t n) noexcept
{
    std::size_t got = 0;
    while (got < n) {
        const ssize_t r = sys().read(fd, buf + got, n - got);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        if (r == 0) {
            break;
        }
        got += static_cast<std::size_t>(r);
    }
    return static_cast<ssize_t>(got);
}

int read_proc_file(const char* path, std::string& out, std::size_t limit)
{
    out.clear();
    const int fd = open_proc_file(path);
    if (fd < 0) {
        return errno == ESRCH ? ENOENT : errno;
    }
    int err = 0;
    char buf[4096];
    while (out.size() < limit) {
        const ssize_t r = read_up_to(fd, buf, sizeof buf);
        if (r < 0) {
            err = errno == ESRCH ? ENOENT : errno;
            break;
        }
        out.append(buf, static_cast<std::size_t>(r));
        if (static_cast<std::size_t>(r) < sizeof buf) {
            break;
        }
    }
    (void)sys().close(fd);
    return err;
}

int read_proc_stat(std::uint64_t pid, proc_stat& out) noexcept
{
#ifdef _WIN32
    return sys_win32::process_stat(pid, out.state, out.start); // no /proc: the process's (or thread's) times
#endif
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%llu/stat", static_cast<unsigned long long>(pid));
    const int fd = open_proc_file(path);
    if (fd < 0) {
        return errno;
    }
    char buf[1024];
    const ssize_t r = read_up_to(fd, buf, sizeof buf - 1);
    const int err = r < 0 ? errno : 0;
    (void)sys().close(fd);
    if (err != 0) {
        return err == ESRCH ? ENOENT : err; // ESRCH: the process went away between open and read
    }
    const auto n = static_cast<std::size_t>(r);
    buf[n] = '\0';
    // The command name (field 2) may contain spaces and parentheses: fields resume after the last ')'.
    const char* p = std::strrchr(buf, ')');
    char state = '?';
    unsigned long long start = 0;
    if (p == nullptr ||
        std::sscanf(p + 1, " %c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu", &state,
                    &start) != 2) {
        return EILSEQ;
    }
    out.state = state;
    out.start = start;
    return 0;
}

proc_probe probe_process(std::uint64_t pid) noexcept
{
    proc_probe p;
    p.kill_err = sys().kill(static_cast<pid_t>(pid), 0) == 0 ? 0 : errno;
    if (p.kill_err == 0 || p.kill_err == EPERM) {
        p.stat_err = read_proc_stat(pid, p.stat);
    }
    return p;
}

process_check judge_process(std::uint64_t pid, std::uint64_t start, const proc_probe& p)
{
    const std::string id = std::to_string(pid);
    process_check c;
    if (!valid_pid(pid)) {
        c.detail = "the record names no valid pid (" + id + ")";
        return c;
    }
    if (p.kill_err == ESRCH) {
        c.state = liveness::dead;
        c.detail = "no process " + id;
        return c;
    }
    if (p.kill_err != 0 && p.kill_err != EPERM) {
        c.detail = "cannot tell whether process " + id + " runs (kill: " + std::generic_category().message(p.kill_err) +
                   ")";
        return c;
    }
    // The pid exists (EPERM: it exists but belongs to another user).
    if (p.stat_err == 0) {
        c.proc_state = p.stat.state;
        c.start = p.stat.start;
        if (p.stat.state == 'Z' || p.stat.state == 'X') {
            c.state = liveness::dead;
            c.detail = "process " + id + " has exited (a zombie its parent has not reaped)";
            return c;
        }
        if (start != 0 && p.stat.start != start) {
            c.state = liveness::dead;
            c.detail = "pid " + id + " now belongs to another process (started at tick " +
                       std::to_string(p.stat.start) + ", the recorded one at tick " + std::to_string(start) + ")";
            return c;
        }
        c.state = liveness::alive;
        c.detail = "process " + id +
                   (start != 0 ? " runs with the recorded start time" : " runs (no start time recorded)");
        if (c.stopped()) {
            c.detail += ", stopped";
        }
        return c;
    }
    // kill says it exists, /proc could not confirm it. ENOENT here is either a process that ended
    // between the two calls or a system without /proc: neither is evidence enough.
    c.detail = "process " + id + " exists, but /proc/" + id +
               "/stat could not be read to compare its start time: " + std::generic_category().message(p.stat_err);
    if (start == 0 && p.stat_err == ENOENT) {
        c.state = liveness::alive; // nothing recorded to compare: the pid exists, that is all one can know
    }
    return c;
}

process_check check_process(std::uint64_t pid, std::uint64_t start, proc_cache* cache)
{
    if (!valid_pid(pid)) {
        return judge_process(pid, start, proc_probe{});
    }
    if (cache != nullptr) {
        const auto it = cache->find(pid);
        if (it != cache->end()) {
            return judge_process(pid, start, it->second);
        }
        const proc_probe p = probe_process(pid);
        cache->emplace(pid, p);
        return judge_process(pid, start, p);
    }
    return judge_process(pid, start, probe_process(pid));
}

bool holder_gone(std::uint64_t pid, std::uint64_t start, proc_cache* cache, process_check* check)
{
    process_check c = check_process(pid, start, cache);
    const bool gone = !valid_pid(pid) || c.state == liveness::dead;
    if (check != nullptr) {
        *check = std::move(c);
    }
    return gone;
}

std::uint64_t pid_namespace_id() noexcept
{
    struct stat st {};
    if (retry_eintr([&] { return sys().fstatat(AT_FDCWD, "/proc/self/ns/pid", &st, 0); }) != 0) {
        return 0;
    }
    return static_cast<std::uint64_t>(st.st_ino);
}

} // namespace ndshm::detail
#endif // NDSHM_DEFINITIONS

#endif
