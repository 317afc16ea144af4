/// @file detail/pool_impl.hpp
/// The machinery of ndshm::fork_pool that both ends of a pipe share: length-prefixed frames, the tasks
/// a call is made of, how a worker's exception or death is described to the parent, the worker's loop,
/// and the in-process run of pool(0). Arguments and results travel as detail/pool_codec.hpp encodes
/// them; the parent's side is detail/pool_core.hpp.
#ifndef NDSHM_DETAIL_POOL_IMPL_HPP
#define NDSHM_DETAIL_POOL_IMPL_HPP

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cereal/archives/binary.hpp>

#include "../error.hpp"
#include "config.hpp"
#include "pool_codec.hpp"
#include "pool_worker.hpp"
#include "segment_impl.hpp"

namespace ndshm::detail {

// ---- frames ---------------------------------------------------------------------------------------

inline constexpr std::uint32_t frame_magic = 0x4650444eu; // "NDPF"
enum : std::uint32_t { frame_task = 1, frame_stop = 2, frame_result = 3, frame_error = 4 };
/// Largest frame either side accepts: bigger data belongs in a shared array.
inline constexpr std::uint64_t frame_limit = std::uint64_t(256) << 20;

struct frame_header {
    std::uint32_t magic;
    std::uint32_t kind;
    std::uint64_t id;   // task id, echoed by the worker
    std::uint64_t size; // payload bytes after the header
};
static_assert(sizeof(frame_header) == 24, "frame headers are 24 bytes");

/// Writes all of `n` bytes; returns 0 or an errno value (EPIPE: the reader is gone).
NDSHM_DECL int write_all(int fd, const void* data, std::size_t n) noexcept;

/// Reads exactly `n` bytes. Returns 0, -1 at end of file before the first byte or in the middle, or an
/// errno value.
NDSHM_DECL int read_all(int fd, void* data, std::size_t n) noexcept;

/// Builds a frame (header and payload) in one buffer, so that it takes one write.
NDSHM_DECL std::string make_frame(std::uint32_t kind, std::uint64_t id, std::string_view payload);
// ---- tasks ----------------------------------------------------------------------------------------

/// Runs one task in a worker: decodes `payload`, calls the function at address `fn`, encodes the
/// result into `out`. Both addresses are valid in every worker: workers are forks of the parent.
using invoker_fn = void (*)(std::uintptr_t fn, std::string_view payload, std::string& out);

/// One unit of work of a call.
struct task {
    invoker_fn invoke = nullptr;
    std::uintptr_t fn = 0;
    std::string args;
    long worker = -1;               // a fixed worker index, or -1: whichever is free
    std::vector<task_array> arrays; // what the arguments name (only for a pool that records them)
};

/// Receives result `index` of a call (its encoded bytes; empty for a function that returns void).
using result_callback = std::function<void(std::size_t index, std::string_view bytes)>;

/// The kinds of exception a worker reports, so that the parent throws the same ndshm type.
enum : std::uint32_t {
    exc_std = 0,
    exc_error,
    exc_not_found,
    exc_already_exists,
    exc_permission_denied,
    exc_out_of_space,
    exc_dtype_mismatch,
    exc_format_error,
    exc_serialization_error,
    exc_unknown,
};

/// A worker's failure as it travels to the parent.
struct task_failure {
    std::uint32_t kind = exc_std;
    std::int32_t code = 0;
    std::string message;
};

/// An error code as it travels in a task_failure: an errno value as itself, an ndshm::errc as its
/// negated value (so the parent gets back the same code and category).
inline std::int32_t wire_code(const std::error_code& c) noexcept
{
    return c.category() == error_category() ? -c.value() : c.value();
}

/// The error code that wire_code(c) encoded (a worker's bytes, untrusted: an out-of-range ndshm value
/// reads as "unknown ndshm error"); ECANCELED when the worker sent none.
inline std::error_code code_of_wire(std::int32_t w) noexcept
{
    if (w == 0 || w == INT32_MIN) {
        return errno_code(ECANCELED);
    }
    return w < 0 ? make_error_code(static_cast<errc>(-w)) : errno_code(w);
}

/// Describes the exception in flight (call from a catch block).
NDSHM_DECL task_failure describe_current_exception() noexcept;

NDSHM_DECL std::string encode_failure(const task_failure& f);

/// Decodes a failure sent by a worker (untrusted bytes).
NDSHM_DECL task_failure decode_failure(std::string_view s);

/// Throws, in the caller, the exception a task threw `where` ("map on worker 1 (pid 42)").
[[noreturn]] NDSHM_DECL void rethrow_failure_at(const std::string& where, const std::string& fix,
                                                const task_failure& f);

/// Throws, in the parent, the exception that a task threw in worker `index`.
[[noreturn]] NDSHM_DECL void rethrow_failure(const std::string& op, std::size_t index, long pid, bool in_process,
                                             const task_failure& f);

/// The conventional short name of a signal ("SIGKILL"), or "signal N".
NDSHM_DECL std::string signal_name(int sig);

/// "was killed by signal 9 (SIGKILL)" or "exited with status 3", from a waitpid status.
NDSHM_DECL std::string describe_exit(int status, bool known);

// ---- the worker -----------------------------------------------------------------------------------

/// Every pipe end that pools of this process hold, so that a newly forked worker closes the ones that
/// are not its own (otherwise it would keep other workers' pipes open and hide their deaths).
struct pool_fd_registry {
    std::mutex mutex;
    std::set<int> fds;
};

inline pool_fd_registry& pool_fds()
{
    static pool_fd_registry r;
    return r;
}

/// The worker's loop: read a task, run it, answer; until told to stop or the parent goes away.
[[noreturn]] NDSHM_DECL void worker_main(int in, int out) noexcept;

/// Runs the tasks one after the other in the calling process, as worker 0 of 1 (a pool without workers).
NDSHM_DECL void run_tasks_in_process(const char* op, std::vector<task>& tasks, const result_callback& on_result);

} // namespace ndshm::detail

#if NDSHM_DEFINITIONS
namespace ndshm::detail {

int write_all(int fd, const void* data, std::size_t n) noexcept
{
    const auto* p = static_cast<const unsigned char*>(data);
    while (n > 0) {
        const ssize_t r = sys().write(fd, p, n);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno;
        }
        p += r;
        n -= static_cast<std::size_t>(r);
    }
    return 0;
}

int read_all(int fd, void* data, std::size_t n) noexcept
{
    auto* p = static_cast<unsigned char*>(data);
    while (n > 0) {
        const ssize_t r = sys().read(fd, p, n);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno;
        }
        if (r == 0) {
            return -1;
        }
        p += r;
        n -= static_cast<std::size_t>(r);
    }
    return 0;
}

std::string make_frame(std::uint32_t kind, std::uint64_t id, std::string_view payload)
{
    std::string f(sizeof(frame_header) + payload.size(), '\0');
    const frame_header h{frame_magic, kind, id, payload.size()};
    std::memcpy(&f[0], &h, sizeof h);
    if (!payload.empty()) {
        std::memcpy(&f[sizeof h], payload.data(), payload.size());
    }
    return f;
}

task_failure describe_current_exception() noexcept
{
    task_failure f;
    try {
        try {
            throw;
        } catch (const not_found& e) {
            f = {exc_not_found, wire_code(e.code()), e.what()};
        } catch (const already_exists& e) {
            f = {exc_already_exists, wire_code(e.code()), e.what()};
        } catch (const permission_denied& e) {
            f = {exc_permission_denied, wire_code(e.code()), e.what()};
        } catch (const out_of_space& e) {
            f = {exc_out_of_space, wire_code(e.code()), e.what()};
        } catch (const dtype_mismatch& e) {
            f = {exc_dtype_mismatch, wire_code(e.code()), e.what()};
        } catch (const format_error& e) {
            f = {exc_format_error, wire_code(e.code()), e.what()};
        } catch (const serialization_error& e) {
            f = {exc_serialization_error, wire_code(e.code()), e.what()};
        } catch (const error& e) {
            f = {exc_error, wire_code(e.code()), e.what()};
        } catch (const cereal::Exception& e) {
            f = {exc_serialization_error, wire_code(make_error_code(errc::serialization)),
                 std::string("cereal: ") + e.what()};
        } catch (const std::exception& e) {
            f = {exc_std, 0, e.what()};
        } catch (...) {
            f = {exc_unknown, 0, "an exception that is not a std::exception"};
        }
    } catch (...) {
        f = {exc_unknown, 0, "(the exception could not be described)"};
    }
    return f;
}

std::string encode_failure(const task_failure& f)
{
    std::string s(8 + f.message.size(), '\0');
    std::memcpy(&s[0], &f.kind, 4);
    std::memcpy(&s[4], &f.code, 4);
    std::memcpy(&s[8], f.message.data(), f.message.size());
    return s;
}

task_failure decode_failure(std::string_view s)
{
    task_failure f;
    if (s.size() < 8) {
        f.kind = exc_unknown;
        f.message = "(a malformed error report)";
        return f;
    }
    std::memcpy(&f.kind, s.data(), 4);
    std::memcpy(&f.code, s.data() + 4, 4);
    f.message.assign(s.data() + 8, std::min<std::size_t>(s.size() - 8, 64 * 1024));
    if (f.kind > exc_unknown) {
        f.kind = exc_unknown;
    }
    return f;
}

void rethrow_failure_at(const std::string& where, const std::string& fix, const task_failure& f)
{
    const std::string cause = "the task threw: " + f.message;
    const auto code = code_of_wire(f.code);
    switch (f.kind) {
    case exc_not_found:
        raise<not_found>(where, "", cause, fix, code);
    case exc_already_exists:
        raise<already_exists>(where, "", cause, fix, code);
    case exc_permission_denied:
        raise<permission_denied>(where, "", cause, fix, code);
    case exc_out_of_space:
        raise<out_of_space>(where, "", cause, fix, code);
    case exc_dtype_mismatch:
        raise<dtype_mismatch>(where, "", cause, fix, code);
    case exc_format_error:
        raise<format_error>(where, "", cause, fix, code);
    case exc_serialization_error:
        raise<serialization_error>(where, "", cause, fix, code);
    default:
        raise<error>(where, "", cause, fix, code);
    }
}

void rethrow_failure(const std::string& op, std::size_t index, long pid, bool in_process, const task_failure& f)
{
    const std::string where = op + " on worker " + std::to_string(index) + " (pid " + std::to_string(pid) +
                              (in_process ? ", in-process" : "") + ")";
    rethrow_failure_at(where,
                       in_process ? "fix the task or catch this exception"
                                  : "fix the task or catch this exception; the worker keeps running",
                       f);
}

std::string signal_name(int sig)
{
    static const std::pair<int, const char*> names[] = {
        {SIGHUP, "SIGHUP"},   {SIGINT, "SIGINT"},   {SIGQUIT, "SIGQUIT"}, {SIGILL, "SIGILL"},   {SIGTRAP, "SIGTRAP"},
        {SIGABRT, "SIGABRT"}, {SIGBUS, "SIGBUS"},   {SIGFPE, "SIGFPE"},   {SIGKILL, "SIGKILL"}, {SIGUSR1, "SIGUSR1"},
        {SIGSEGV, "SIGSEGV"}, {SIGUSR2, "SIGUSR2"}, {SIGPIPE, "SIGPIPE"}, {SIGALRM, "SIGALRM"}, {SIGTERM, "SIGTERM"},
        {SIGXCPU, "SIGXCPU"}, {SIGXFSZ, "SIGXFSZ"}, {SIGSYS, "SIGSYS"}};
    for (const auto& n : names) {
        if (n.first == sig) {
            return n.second;
        }
    }
    return "signal " + std::to_string(sig);
}

std::string describe_exit(int status, bool known)
{
    if (!known) {
        return "ended (its exit status is unknown: something else reaped it)";
    }
    if (WIFSIGNALED(status)) {
        const int sig = WTERMSIG(status);
        std::string s = "was killed by signal " + std::to_string(sig) + " (" + signal_name(sig) + ")";
#ifdef WCOREDUMP
        if (WCOREDUMP(status)) {
            s += ", core dumped";
        }
#endif
        return s;
    }
    if (WIFEXITED(status)) {
        return "exited with status " + std::to_string(WEXITSTATUS(status));
    }
    return "ended (status " + std::to_string(status) + ")";
}

void worker_main(int in, int out) noexcept
{
    std::string payload, result;
    worker_mappings().enabled = true;
    current_array_recorder() = nullptr; // a fork inside an ndshm::mpi::pool task: arrays travel by name here
    current_array_resolver() = nullptr;
    for (;;) {
        if (!worker_mappings().entries.empty()) {
            // Idle for a while: let go of the cached arrays (the parent may be done with them).
            struct pollfd p {};
            p.fd = in;
            p.events = POLLIN;
            if (sys().poll(&p, 1, worker_cache_idle_ms) == 0) {
                worker_mappings().clear();
            }
        }
        frame_header h{};
        if (read_all(in, &h, sizeof h) != 0 || h.magic != frame_magic || h.kind != frame_task || h.size > frame_limit ||
            h.size < 16) {
            break; // the parent closed the pipe, said stop, or sent something this worker does not understand
        }
        try {
            payload.resize(static_cast<std::size_t>(h.size));
        } catch (...) {
            break;
        }
        if (read_all(in, &payload[0], payload.size()) != 0) {
            break;
        }
        std::uint64_t invoker = 0, fn = 0;
        std::memcpy(&invoker, payload.data(), 8);
        std::memcpy(&fn, payload.data() + 8, 8);
        std::string frame;
        try {
            result.clear();
            reinterpret_cast<invoker_fn>(static_cast<std::uintptr_t>(invoker))(
                static_cast<std::uintptr_t>(fn), std::string_view(payload).substr(16), result);
            if (result.size() > frame_limit) {
                raise<error>("return a task result", "",
                             "the result takes " + std::to_string(result.size()) + " bytes, more than the " +
                                 std::to_string(frame_limit) + " a pool message may hold",
                             "return a shared_ndarray instead: only its name travels", errno_code(EMSGSIZE));
            }
            frame = make_frame(frame_result, h.id, result);
        } catch (...) {
            try {
                frame = make_frame(frame_error, h.id, encode_failure(describe_current_exception()));
            } catch (...) {
                break;
            }
        }
        std::fflush(nullptr); // what the task printed reaches its destination before the answer
        if (write_all(out, frame.data(), frame.size()) != 0) {
            break; // the parent is gone
        }
    }
    std::fflush(nullptr);
    worker_mappings().clear();
    // Arrays this worker still owns (kept in globals, say) are unlinked, as free_session() does: nobody
    // else could reach them.
    for (const auto& owned : session().take_all()) {
        (void)unlink_if_same(owned.first, owned.second);
    }
    ::_exit(0);
}

void run_tasks_in_process(const char* op, std::vector<task>& tasks, const result_callback& on_result)
{
    worker_state& w = current_worker();
    const worker_state saved = w;
    w.info = worker_info{true, 0, 1};
    w.parent = this_process();
    struct restore {
        worker_state& w;
        worker_state saved;
        ~restore() { w = saved; }
    } r{w, saved};
    std::string out;
    for (std::size_t i = 0; i < tasks.size(); ++i) {
        bool ok = true;
        task_failure f;
        try {
            out.clear();
            tasks[i].invoke(tasks[i].fn, tasks[i].args, out);
        } catch (...) {
            ok = false;
            f = describe_current_exception();
        }
        if (!ok) {
            rethrow_failure(op, 0, static_cast<long>(::getpid()), true, f);
        }
        if (on_result) {
            on_result(i, out);
        }
    }
}

} // namespace ndshm::detail
#endif // NDSHM_DEFINITIONS

#endif
