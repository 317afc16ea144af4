/// @file detail/pool_core.hpp
/// The parent's side of ndshm::fork_pool, written once for every call: the worker processes (forked
/// with a pair of pipes each), sending each task to a worker with room, reading the answers, and when
/// a worker dies, saying how and forking a replacement. fork_pool's calls (detail/pool_calls.hpp)
/// build the tasks and hand them to pool_core::execute.
#ifndef NDSHM_DETAIL_POOL_CORE_HPP
#define NDSHM_DETAIL_POOL_CORE_HPP

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../error.hpp"
#include "config.hpp"
#include "pool_impl.hpp"
#include "pool_worker.hpp"
#include "segment_impl.hpp"
#include "sys.hpp"

namespace ndshm::detail {

/// Blocks SIGPIPE in this thread for a scope, so that writing to a dead worker's pipe fails with
/// EPIPE instead of killing the parent; a SIGPIPE caused meanwhile is discarded, one that was
/// pending before is left alone.
class sigpipe_block {
public:
    NDSHM_DECL sigpipe_block() noexcept;
    sigpipe_block(const sigpipe_block&) = delete;
    sigpipe_block& operator=(const sigpipe_block&) = delete;
    NDSHM_DECL ~sigpipe_block();

private:
    sigset_t m_set;
    sigset_t m_old;
    bool m_was_pending = false;
    bool m_active = false;
};

/// The worker processes of a fork_pool and the running of a call's tasks on them.
class pool_core {
public:
    /// Forks `workers` worker processes (none for 0: everything then runs in the calling process).
    /// @throws error if a pipe or a fork fails (the workers already forked are stopped again)
    NDSHM_DECL explicit pool_core(std::size_t workers);

    pool_core(const pool_core&) = delete;
    pool_core& operator=(const pool_core&) = delete;

    /// Stops every worker (an idle one is told to exit, one still busy is killed) and reaps it. In a
    /// forked child of the creating process it does nothing.
    NDSHM_DECL ~pool_core();

    /// Number of worker processes (0: tasks run in the calling process).
    std::size_t size() const noexcept { return m_slots.size(); }

    /// The current workers' process ids (a replaced worker has a new one).
    NDSHM_DECL std::vector<long> pids() const;

    /// Runs every task; calls on_result(index, bytes) for each result. Throws the first failure, once
    /// every task already started has finished.
    NDSHM_DECL void execute(const char* op, std::vector<task>& tasks, const result_callback& on_result);

private:
    /// Keeps a call's first failure (a deferred throw) and drops the later ones.
    using fail_fn = std::function<void(std::function<void()>)>;

    /// A task sent to a worker.
    struct sent {
        std::uint64_t id;  // frame id
        std::size_t index; // index in the call's task list
        std::size_t bytes; // frame size
    };

    /// A worker: its process and the parent's ends of its two pipes.
    struct slot {
        pid_t pid = -1;
        fd_guard to;   // parent -> worker: tasks
        fd_guard from; // worker -> parent: results
        std::size_t pipe_capacity = 4096;
        std::deque<sent> inflight; // tasks sent and not yet answered, oldest first
        std::size_t inflight_bytes = 0;
    };

    NDSHM_DECL void check_creator(const char* op) const;

    NDSHM_DECL void execute_parallel(const char* op, std::vector<task>& tasks, const result_callback& on_result);

    /// Sends tasks to workers that have room: a few small ones in flight per worker hide the round trip.
    NDSHM_DECL void dispatch(const char* op, std::vector<task>& tasks, std::vector<std::deque<std::size_t>>& fixed,
                             std::deque<std::size_t>& any, const fail_fn& fail);

    /// Reads one answer from worker w.
    NDSHM_DECL void receive(const char* op, std::size_t w, const result_callback& on_result, const fail_fn& fail);

    /// Captures the exception in flight as a deferred throw.
    NDSHM_DECL static std::function<void()> capture();

    /// Worker w died (or must be stopped, `kill_it`): reap it, describe how it ended (and `note` why),
    /// fork a replacement.
    NDSHM_DECL void crashed(const char* op, std::size_t w, const std::string& note, const fail_fn& fail, bool kill_it);

    /// Waits for `pid` to end. A worker whose pipe reached end of file is exiting, or has closed the
    /// pipe itself: give it a moment, then kill it, so that this never hangs.
    NDSHM_DECL static bool reap(pid_t pid, int& status);

    NDSHM_DECL void close_slot(slot& s) noexcept;

    NDSHM_DECL void replace(std::size_t w);

    /// Forks worker w with a fresh pair of pipes.
    NDSHM_DECL void spawn(std::size_t w);

    NDSHM_DECL void shutdown() noexcept;

    pid_t m_creator;
    std::vector<slot> m_slots;
    sigset_t m_mask;
    std::mutex m_call;
    std::uint64_t m_next_id = 0;
    std::size_t m_rr = 0;
};

} // namespace ndshm::detail

#if NDSHM_DEFINITIONS
namespace ndshm::detail {

sigpipe_block::sigpipe_block() noexcept
{
    sigemptyset(&m_set);
    sigaddset(&m_set, SIGPIPE);
    sigset_t pending;
    sigemptyset(&pending);
    (void)sigpending(&pending);
    m_was_pending = sigismember(&pending, SIGPIPE) == 1;
    m_active = pthread_sigmask(SIG_BLOCK, &m_set, &m_old) == 0;
}

sigpipe_block::~sigpipe_block()
{
    if (!m_active) {
        return;
    }
    if (!m_was_pending) {
        sigset_t pending;
        sigemptyset(&pending);
        if (sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1) {
            const struct timespec zero {
            };
            (void)sigtimedwait(&m_set, nullptr, &zero);
        }
    }
    (void)pthread_sigmask(SIG_SETMASK, &m_old, nullptr);
}

pool_core::pool_core(std::size_t workers) : m_creator(::getpid()), m_slots(workers)
{
    (void)pthread_sigmask(SIG_SETMASK, nullptr, &m_mask);
    try {
        for (std::size_t i = 0; i < workers; ++i) {
            spawn(i);
        }
    } catch (...) {
        shutdown();
        throw;
    }
}

pool_core::~pool_core() { shutdown(); }

std::vector<long> pool_core::pids() const
{
    std::vector<long> p;
    for (const auto& s : m_slots) {
        p.push_back(static_cast<long>(s.pid));
    }
    return p;
}

void pool_core::execute(const char* op, std::vector<task>& tasks, const result_callback& on_result)
{
    check_creator(op);
    std::lock_guard<std::mutex> call(m_call);
    if (m_slots.empty()) {
        run_tasks_in_process(op, tasks, on_result);
    } else {
        execute_parallel(op, tasks, on_result);
    }
}

void pool_core::check_creator(const char* op) const
{
    if (::getpid() != m_creator) {
        raise<error>(op, "", "a fork_pool can only be used by the process that created it",
                     "create a pool in this process (for example inside the task)", errno_code(EPERM));
    }
}

void pool_core::execute_parallel(const char* op, std::vector<task>& tasks, const result_callback& on_result)
{
    sigpipe_block no_sigpipe;
    // What went wrong first in this call: thrown once every task already started has finished.
    std::function<void()> failed;
    const fail_fn fail = [&](std::function<void()> raise) {
        if (!failed) {
            failed = std::move(raise);
        }
    };
    // Workers that died between calls (no task was lost), or that an earlier call cut short left
    // busy (their answers must not mix with this call's), are replaced first.
    for (std::size_t w = 0; w < m_slots.size(); ++w) {
        int status = 0;
        const bool ended = m_slots[w].pid > 0 && sys().waitpid(m_slots[w].pid, &status, WNOHANG) == m_slots[w].pid;
        if (ended) {
            m_slots[w].pid = -1; // reaped
        }
        if (m_slots[w].pid < 0 || !m_slots[w].inflight.empty()) {
            try {
                replace(w);
            } catch (...) {
                fail(capture());
            }
        }
    }
    std::vector<std::deque<std::size_t>> fixed(m_slots.size());
    std::deque<std::size_t> any;
    for (std::size_t i = 0; i < tasks.size(); ++i) {
        if (tasks[i].worker >= 0) {
            fixed[static_cast<std::size_t>(tasks[i].worker) % m_slots.size()].push_back(i);
        } else {
            any.push_back(i);
        }
    }
    std::vector<pollfd> fds;
    std::vector<std::size_t> polled;
    for (;;) {
        if (!failed) {
            dispatch(op, tasks, fixed, any, fail);
        }
        fds.clear();
        polled.clear();
        for (std::size_t w = 0; w < m_slots.size(); ++w) {
            if (!m_slots[w].inflight.empty()) {
                fds.push_back(pollfd{m_slots[w].from.get(), POLLIN, 0});
                polled.push_back(w);
            }
        }
        if (fds.empty()) {
            break; // nothing running: everything is done, or a failure stopped the dispatch
        }
        const int r = sys().poll(fds.data(), static_cast<nfds_t>(fds.size()), -1);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            const int err = errno;
            // Cannot wait for the workers: stop the busy ones rather than hang.
            for (const std::size_t w : polled) {
                crashed(op, w,
                        "the pool could not wait for it (poll failed: " + std::generic_category().message(err) +
                            "), so it stopped it",
                        fail, true);
            }
            continue;
        }
        for (std::size_t j = 0; j < fds.size(); ++j) {
            if (fds[j].revents != 0) {
                receive(op, polled[j], on_result, fail);
            }
        }
    }
    if (failed) {
        failed();
    }
    if (!any.empty() || std::any_of(fixed.begin(), fixed.end(), [](const auto& q) { return !q.empty(); })) {
        raise<error>(op, "", "some tasks could not be started", "", errno_code(ECANCELED));
    }
}

void pool_core::dispatch(const char* op, std::vector<task>& tasks, std::vector<std::deque<std::size_t>>& fixed,
                         std::deque<std::size_t>& any, const fail_fn& fail)
{
    constexpr std::size_t max_inflight = 4;
    const std::size_t start = m_rr;
    for (std::size_t k = 0; k < m_slots.size(); ++k) {
        const std::size_t w = (start + k) % m_slots.size();
        for (;;) {
            slot& s = m_slots[w];
            if (s.pid < 0 || s.inflight.size() >= max_inflight) {
                break;
            }
            const bool from_any = fixed[w].empty();
            std::deque<std::size_t>& q = from_any ? any : fixed[w];
            if (q.empty()) {
                break;
            }
            const std::size_t i = q.front();
            const std::size_t bytes = sizeof(frame_header) + 16 + tasks[i].args.size();
            // Only a frame that fits the pipe beside those in flight may be queued behind them: a
            // write that blocked while the worker blocks writing its answer would deadlock.
            if (!s.inflight.empty() && s.inflight_bytes + bytes > s.pipe_capacity / 2) {
                break;
            }
            if (tasks[i].args.size() + 16 > frame_limit) {
                q.pop_front();
                const std::string what = std::to_string(tasks[i].args.size());
                fail([op, what] {
                    raise<error>(op, "",
                                 "the task's arguments take " + what + " bytes, more than a pool message may hold",
                                 "pass large data as a shared_ndarray: only its name travels", errno_code(EMSGSIZE));
                });
                return;
            }
            q.pop_front();
            const std::uint64_t id = ++m_next_id;
            // One buffer, one write: the header, the two code addresses, the encoded arguments.
            std::string frame(bytes, '\0');
            const frame_header h{frame_magic, frame_task, id, 16 + tasks[i].args.size()};
            const auto inv = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(tasks[i].invoke));
            const auto fn = static_cast<std::uint64_t>(tasks[i].fn);
            std::memcpy(&frame[0], &h, sizeof h);
            std::memcpy(&frame[sizeof h], &inv, 8);
            std::memcpy(&frame[sizeof h + 8], &fn, 8);
            if (!tasks[i].args.empty()) {
                std::memcpy(&frame[sizeof h + 16], tasks[i].args.data(), tasks[i].args.size());
            }
            s.inflight.push_back(sent{id, i, frame.size()});
            s.inflight_bytes += frame.size();
            if (from_any) {
                m_rr = (w + 1) % m_slots.size(); // the next free task starts with the next worker
            }
            if (const int err = write_all(s.to.get(), frame.data(), frame.size()); err != 0) {
                crashed(op, w,
                        err == EPIPE ? std::string()
                                     : "a task could not be sent to it (" + std::generic_category().message(err) +
                                           "), so the pool stopped it",
                        fail, err != EPIPE);
                break;
            }
        }
    }
}

void pool_core::receive(const char* op, std::size_t w, const result_callback& on_result, const fail_fn& fail)
{
    slot& s = m_slots[w];
    frame_header h{};
    const int r = read_all(s.from.get(), &h, sizeof h);
    if (r != 0) {
        crashed(op, w, "", fail, false);
        return;
    }
    const sent expected = s.inflight.front();
    if (h.magic != frame_magic || (h.kind != frame_result && h.kind != frame_error) || h.id != expected.id ||
        h.size > frame_limit) {
        crashed(op, w, "it sent a malformed answer (the task may have corrupted the worker), so the pool stopped it",
                fail, true);
        return;
    }
    std::string payload;
    try {
        payload.resize(static_cast<std::size_t>(h.size));
    } catch (...) {
        crashed(op, w, "its answer did not fit in memory, so the pool stopped it", fail, true);
        return;
    }
    if (!payload.empty() && read_all(s.from.get(), &payload[0], payload.size()) != 0) {
        crashed(op, w, "", fail, false);
        return;
    }
    s.inflight.pop_front();
    s.inflight_bytes -= std::min(s.inflight_bytes, expected.bytes);
    if (h.kind == frame_error) {
        const task_failure f = decode_failure(payload);
        const std::string name = op;
        const long pid = static_cast<long>(s.pid);
        fail([name, w, pid, f] { rethrow_failure(name, w, pid, false, f); });
        return;
    }
    if (on_result) {
        try {
            on_result(expected.index, payload);
        } catch (...) {
            fail(capture());
        }
    }
}

std::function<void()> pool_core::capture()
{
    std::exception_ptr e = std::current_exception();
    return [e] { std::rethrow_exception(e); };
}

void pool_core::crashed(const char* op, std::size_t w, const std::string& note, const fail_fn& fail, bool kill_it)
{
    slot& s = m_slots[w];
    const pid_t pid = s.pid;
    if (kill_it) {
        (void)sys().kill(pid, SIGKILL);
    }
    int status = 0;
    const bool known = reap(pid, status);
    std::string what = describe_exit(status, known);
    what += !s.inflight.empty() ? " while running a task" : "";
    what += note.empty() ? std::string() : " (" + note + ")";
    s.inflight.clear();
    s.inflight_bytes = 0;
    close_slot(s);
    std::string replaced;
    try {
        spawn(w);
        replaced = "a new worker (pid " + std::to_string(m_slots[w].pid) +
                   ") replaced it; state that broadcast gave the old one is gone (broadcast again if tasks "
                   "need it)";
    } catch (const std::exception& e) {
        replaced = "no new worker could be started (" + std::string(e.what()) + "); the next call tries again";
    }
    const std::string where = std::string(op) + " on worker " + std::to_string(w) + " (pid " +
                              std::to_string(static_cast<long>(pid)) + ")";
    const std::string cause = "the worker " + what;
    fail([where, cause, replaced] { raise<error>(where, "", cause, replaced, errno_code(ECHILD)); });
}

bool pool_core::reap(pid_t pid, int& status)
{
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    for (;;) {
        const pid_t r = sys().waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            return true;
        }
        if (r < 0 && errno != EINTR) {
            return false; // ECHILD: reaped elsewhere (SIGCHLD ignored, or the program waited for it)
        }
        if (r == 0 && std::chrono::steady_clock::now() >= deadline) {
            (void)sys().kill(pid, SIGKILL);
            while (sys().waitpid(pid, &status, 0) < 0) {
                if (errno != EINTR) {
                    return false;
                }
            }
            return true;
        }
        std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
}

void pool_core::close_slot(slot& s) noexcept
{
    {
        std::lock_guard<std::mutex> g(pool_fds().mutex);
        pool_fds().fds.erase(s.to.get());
        pool_fds().fds.erase(s.from.get());
    }
    s.to.reset();
    s.from.reset();
    s.pid = -1;
}

void pool_core::replace(std::size_t w)
{
    slot& s = m_slots[w];
    if (s.pid > 0) {
        (void)sys().kill(s.pid, SIGKILL);
        int status = 0;
        (void)reap(s.pid, status);
    }
    s.inflight.clear();
    s.inflight_bytes = 0;
    close_slot(s);
    spawn(w);
}

void pool_core::spawn(std::size_t w)
{
    int to[2] = {-1, -1}, from[2] = {-1, -1};
    if (sys().pipe2(to, O_CLOEXEC) != 0) {
        raise_errno("fork_pool", "", errno, "pipe2");
    }
    fd_guard to_r(to[0]), to_w(to[1]);
    if (sys().pipe2(from, O_CLOEXEC) != 0) {
        raise_errno("fork_pool", "", errno, "pipe2");
    }
    fd_guard from_r(from[0]), from_w(from[1]);
    const int capacity = sys().fcntl(to[1], F_GETPIPE_SZ, 0);
    std::vector<int> others;
    {
        std::lock_guard<std::mutex> g(pool_fds().mutex);
        others.assign(pool_fds().fds.begin(), pool_fds().fds.end());
    }
    std::fflush(nullptr); // the worker must not inherit unwritten output and write it a second time
    const pid_t pid = sys().fork();
    if (pid < 0) {
        const int err = errno;
        if (err == EAGAIN || err == ENOMEM) {
            raise<error>("fork_pool: start worker " + std::to_string(w), "",
                         "fork failed: " + std::generic_category().message(err),
                         "the system is out of processes (ulimit -u) or memory; end some processes, "
                         "raise the limit, or use fewer workers",
                         errno_code(err));
        }
        raise_errno("fork_pool: start worker " + std::to_string(w), "", err, "fork");
    }
    if (pid == 0) {
        for (const int fd : others) {
            (void)sys().close(fd); // other workers' pipes: their ends must close when those workers die
        }
        (void)sys().close(to[1]);
        (void)sys().close(from[0]);
        (void)pthread_sigmask(SIG_SETMASK, &m_mask, nullptr);
        worker_state& ws = current_worker();
        ws.info = worker_info{true, w, m_slots.size()};
        ws.parent = process_identity{static_cast<std::uint64_t>(m_creator), process_start_time(m_creator)};
        worker_main(to[0], from[1]);
    }
    slot& s = m_slots[w];
    s.pid = pid;
    s.to = std::move(to_w);
    s.from = std::move(from_r);
    s.pipe_capacity = capacity > 0 ? static_cast<std::size_t>(capacity) : 4096;
    s.inflight.clear();
    s.inflight_bytes = 0;
    std::lock_guard<std::mutex> g(pool_fds().mutex);
    pool_fds().fds.insert(s.to.get());
    pool_fds().fds.insert(s.from.get());
}

void pool_core::shutdown() noexcept
{
    if (::getpid() != m_creator) {
        return; // a forked copy: the workers are not this process's children
    }
    sigpipe_block no_sigpipe;
    for (slot& s : m_slots) {
        if (s.pid <= 0) {
            continue;
        }
        if (s.inflight.empty()) {
            const frame_header h{frame_magic, frame_stop, 0, 0};
            (void)write_all(s.to.get(), &h, sizeof h);
        } else {
            (void)sys().kill(s.pid, SIGKILL); // still busy with a task nobody waits for any more
        }
    }
    for (slot& s : m_slots) {
        if (s.pid <= 0) {
            continue;
        }
        int status = 0;
        while (sys().waitpid(s.pid, &status, 0) < 0 && errno == EINTR) {
        }
        close_slot(s);
    }
}

} // namespace ndshm::detail
#endif // NDSHM_DEFINITIONS

#endif
