/// @file detail/pool_impl.hpp
/// The machinery of ndshm::fork_pool: length-prefixed frames over pipes, the worker's loop, argument
/// and result codecs (cereal's binary archive; shared arrays travel as names), and how a worker's
/// exception or death is described to the parent.
#ifndef NDSHM_DETAIL_POOL_IMPL_HPP
#define NDSHM_DETAIL_POOL_IMPL_HPP

#include <algorithm>
#include <memory>
#include <vector>
#include <cerrno>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <istream>
#include <mutex>
#include <set>
#include <sstream>
#include <streambuf>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cereal/archives/binary.hpp>
#include <cereal/types/array.hpp>
#include <cereal/types/complex.hpp>
#include <cereal/types/map.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/tuple.hpp>

#include "array_cereal.hpp"
#include <cereal/types/utility.hpp>
#include <cereal/types/vector.hpp>

#include "../error.hpp"
#include "../options.hpp"
#include "../segment.hpp"
#include "../shared_ndarray.hpp"
#include "array_handoff.hpp"
#include "segment_impl.hpp"
#include "trailer.hpp"

namespace ndshm {

/// Which pool worker the calling code runs in (see fork_pool).
struct worker_info {
    bool in_worker = false; ///< true inside a task of a fork_pool or mpi::pool (also for pool(0), in-process)
    std::size_t index = 0;  ///< 0 .. count-1
    std::size_t count = 0;  ///< workers of the pool (1 for pool(0))
};

namespace detail {

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
inline int write_all(int fd, const void* data, std::size_t n) noexcept
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

/// Reads exactly `n` bytes. Returns 0, -1 at end of file before the first byte or in the middle, or an
/// errno value.
inline int read_all(int fd, void* data, std::size_t n) noexcept
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

/// Builds a frame (header and payload) in one buffer, so that it takes one write.
inline std::string make_frame(std::uint32_t kind, std::uint64_t id, std::string_view payload)
{
    std::string f(sizeof(frame_header) + payload.size(), '\0');
    const frame_header h{frame_magic, kind, id, payload.size()};
    std::memcpy(&f[0], &h, sizeof h);
    if (!payload.empty()) {
        std::memcpy(&f[sizeof h], payload.data(), payload.size());
    }
    return f;
}

// ---- cereal over memory ---------------------------------------------------------------------------

/// A read-only streambuf over bytes someone else owns (cereal reads through std::istream).
class memory_buf : public std::streambuf {
public:
    explicit memory_buf(std::string_view s)
    {
        char* p = const_cast<char*>(s.data()); // never written: this buffer only reads
        setg(p, p, p + s.size());
    }
};

// ---- argument and result codecs ---------------------------------------------------------------------

template <class T>
struct is_shared_ndarray : std::false_type {
};
template <class T>
struct is_shared_ndarray<shared_ndarray<T>> : std::true_type {
};

/// Who receives the arrays a task returns (the pool's parent; this process for pool(0)), and which
/// worker this is.
struct worker_state {
    worker_info info;
    process_identity parent;
};

inline worker_state& current_worker() noexcept
{
    static worker_state s;
    return s;
}

/// Values travel through cereal's binary archive; shared arrays travel as their backend and name, and
/// the receiving side attaches them (a read-only mapping for shared_ndarray<const T>).
template <class D>
struct task_codec {
    static_assert(std::is_default_constructible_v<D>,
                  "ndshm::fork_pool: argument and result types must be default-constructible (and serialisable "
                  "with cereal, or shared_ndarray handles)");
    static void save(cereal::BinaryOutputArchive& ar, const D& v) { ar(v); }
    static D load(cereal::BinaryInputArchive& ar)
    {
        D v{};
        ar(v);
        return v;
    }
};

/// The mappings a forked worker keeps between tasks, so that the arrays of a map, a scatter or a run
/// are attached (mapped, and their pages faulted in) once per worker rather than once per task. An
/// entry is used only for the very segment the parent sent (name, file identity and creation time);
/// the cache holds a few recent segments and is dropped whenever the worker has had no task for
/// worker_cache_idle, so that an idle worker keeps no memory of arrays its parent has let go.
struct worker_mapping_cache {
    struct entry {
        std::string dir;
        std::string name;
        file_id id;
        std::uint64_t created_ns = 0;
        std::shared_ptr<mapping> map;
        std::uint64_t used = 0;
    };
    bool enabled = false; ///< only in forked workers: in the parent (pool(0)) a cached mapping would
                          ///< outlive the caller's handles and hold back their unlink
    std::vector<entry> entries;
    std::uint64_t clock = 0;
    static constexpr std::size_t limit = 16;

    void clear() noexcept { entries.clear(); }
};

inline worker_mapping_cache& worker_mappings() noexcept
{
    static worker_mapping_cache c;
    return c;
}

/// How long a worker keeps its cached mappings without a task.
inline constexpr int worker_cache_idle_ms = 100;

/// An array a task refers to, and the part of its data the task works on: what ndshm::mpi::pool moves
/// to a rank on another node (which cannot attach the segment by name) and back. fork_pool ignores it.
struct task_array {
    std::shared_ptr<mapping> map;
    dtype type = dtype::float64;
    std::vector<std::size_t> shape;
    bool fortran = false;
    std::size_t data_offset = 0; ///< of the data in the segment
    std::size_t nbytes = 0;      ///< of the whole array's data
    std::size_t first = 0;       ///< the part the task uses: bytes [first, first + bytes) of the data
    std::size_t bytes = 0;
    bool writable = false;  ///< the task may write it (a handle of non-const T)
    bool exclusive = false; ///< no other task of the call writes [first, first + bytes): it may all go back
    long only_for = -1;     ///< >= 0: only the worker of that index uses it (an add_into accumulator)
};

template <class T>
task_array make_task_array(const shared_ndarray<T>& a)
{
    task_array t;
    t.map = array_access::mapping_of(a);
    t.type = dtype_of<std::remove_const_t<T>>;
    t.shape.assign(a.shape().begin(), a.shape().end());
    t.fortran = a.fortran_order();
    t.data_offset = t.map ? static_cast<std::size_t>(reinterpret_cast<const unsigned char*>(a.data()) - t.map->base())
                          : 0;
    t.nbytes = a.size() * sizeof(T);
    t.bytes = t.nbytes;
    t.writable = !std::is_const_v<T>;
    return t;
}

/// While set (on this thread), every shared array that task_codec encodes is noted here; with `keep`,
/// a result array is not handed over by name (its bytes travel instead: ndshm::mpi::pool between nodes).
struct array_recorder {
    std::vector<task_array> arrays;
    bool keep = false;
};

inline array_recorder*& current_array_recorder() noexcept
{
    static thread_local array_recorder* r = nullptr;
    return r;
}

/// While set (on this thread), task_codec asks it for the segment of an array the sender named before
/// attaching the name: ndshm::mpi::pool hands out node-local copies of arrays that live on another node.
class array_resolver {
public:
    virtual ~array_resolver() = default;
    /// The mapping (and its layout in `info`) to use for the sender's segment `dir`/`name` made at
    /// `created`, or null to attach the name.
    virtual std::shared_ptr<mapping> resolve(const std::string& dir, const std::string& name, std::uint64_t created,
                                             npy_info& info) = 0;
};

inline array_resolver*& current_array_resolver() noexcept
{
    static thread_local array_resolver* r = nullptr;
    return r;
}

template <class T>
struct task_codec<shared_ndarray<T>> {
    using writable = std::remove_const_t<T>;

    /// `transfer`: the sending process owns the array and hands it to the receiver (a result).
    static void save(cereal::BinaryOutputArchive& ar, const shared_ndarray<T>& a, bool transfer = false)
    {
        const std::shared_ptr<mapping>& m = array_access::mapping_of(a);
        std::string dir, name;
        bool moved = false;
        std::uint64_t dev = 0, ino = 0, created = 0; // identity: the receiver takes over this segment only
        if (m && !whole_array_segment(a)) {
            raise<error>("pass to a pool task", m->name(),
                         "the handle is part of a larger segment (a composite object's member or a channel slot); "
                         "only whole arrays travel by name",
                         "pass a copy (shared_ndarray<T>::from_array(a.view())) or the whole object's name",
                         errno_code(EINVAL));
        }
        if (array_recorder* rec = current_array_recorder(); rec != nullptr && m) {
            rec->arrays.push_back(make_task_array(a));
            transfer = transfer && !rec->keep;
        }
        if (m) {
            dir = m->loc().dir;
            name = m->name();
            dev = m->id().dev;
            ino = m->id().ino;
            created = m->get_trailer() != nullptr ? m->get_trailer()->created_ns : 0;
            if (transfer && m->writable() && m->get_trailer() != nullptr && m->owned()) {
                // The parent owns it from now on: its name and its gc record.
                set_trailer_owner(*m->get_trailer(), current_worker().parent);
                m->disown();
                moved = true;
            }
        }
        ar(dir, name, moved, dev, ino, created);
    }
    static shared_ndarray<T> load(cereal::BinaryInputArchive& ar)
    {
        std::string dir, name;
        bool moved = false;
        std::uint64_t dev = 0, ino = 0, created = 0;
        ar(dir, name, moved, dev, ino, created);
        if (name.empty()) {
            return {};
        }
        if (array_resolver* r = current_array_resolver(); r != nullptr) {
            npy_info info;
            if (std::shared_ptr<mapping> m = r->resolve(dir, name, created, info)) {
                check_dtype<writable>("attach", name, info.type);
                return array_access::make<T>(std::move(m), info);
            }
        }
        options o;
        o.directory = dir;
        if (!moved) {
            return attach_cached(dir, name, file_id{dev, ino}, created, o);
        }
        // A returned array: take ownership, which needs a writable mapping to update its trailer. Only
        // of the segment the worker handed over: a name unlinked and created again meanwhile is not it.
        shared_ndarray<writable> a = shared_ndarray<writable>::attach(name, o);
        const mapping& m = *array_access::mapping_of(a);
        if (m.id() != file_id{dev, ino} || m.get_trailer() == nullptr || m.get_trailer()->created_ns != created) {
            raise<format_error>("take over a worker's result", name,
                                "the name no longer names the segment the worker returned (it was removed and "
                                "created again meanwhile); this process does not take it over",
                                "do not remove a task's result before the call returns", errno_code(ESTALE));
        }
        take_ownership(*array_access::mapping_of(a));
        return a;
    }

    /// An argument array: from the worker's cache if it holds this very segment, else attached (and
    /// cached, in a forked worker).
    static shared_ndarray<T> attach_cached(const std::string& dir, const std::string& name, file_id id,
                                           std::uint64_t created, const options& o)
    {
        worker_mapping_cache& c = worker_mappings();
        if (!c.enabled || !id.known()) {
            return shared_ndarray<T>::attach(name, o);
        }
        for (auto& e : c.entries) {
            if (e.id == id && e.created_ns == created && e.name == name && e.dir == dir &&
                (e.map->writable() || std::is_const_v<T>)) {
                // The header is read again (a queue's recycled segment may hold another shape now).
                const npy_info info = parse_npy(e.map->base(), e.map->size(), name, e.map->size());
                const trailer* t = find_trailer(*e.map, info, "attach");
                if (t != nullptr && t->kind == kind_array && t->created_ns == created) {
                    check_dtype<writable>("attach", name, info.type);
                    e.used = ++c.clock;
                    return array_access::make<T>(e.map, info);
                }
            }
        }
        shared_ndarray<T> a = shared_ndarray<T>::attach(name, o);
        const std::shared_ptr<mapping>& m = array_access::mapping_of(a);
        const trailer* t = m->get_trailer();
        if (m->id() == id && t != nullptr && t->created_ns == created) {
            c.entries.erase(
                std::remove_if(c.entries.begin(), c.entries.end(),
                               [&](const worker_mapping_cache::entry& e) { return e.name == name && e.dir == dir; }),
                c.entries.end());
            if (c.entries.size() >= worker_mapping_cache::limit) {
                c.entries.erase(std::min_element(c.entries.begin(), c.entries.end(),
                                                 [](const worker_mapping_cache::entry& x,
                                                    const worker_mapping_cache::entry& y) { return x.used < y.used; }));
            }
            c.entries.push_back({dir, name, id, created, m, ++c.clock});
        }
        return a;
    }
};

template <class D, class A>
void save_arg(cereal::BinaryOutputArchive& ar, A&& a)
{
    const D& d = std::forward<A>(a); // converts (for example shared_ndarray<T> to shared_ndarray<const T>)
    task_codec<D>::save(ar, d);
}

/// Encodes call arguments as the parameter types P of the function that receives them.
template <class... P, class... A>
void save_args(cereal::BinaryOutputArchive& ar, A&&... args)
{
    static_assert(sizeof...(P) == sizeof...(A), "ndshm::fork_pool: pass one argument per parameter of the function");
    (save_arg<std::decay_t<P>>(ar, std::forward<A>(args)), ...);
    (void)ar;
}

template <class... P>
std::tuple<std::decay_t<P>...> load_args(cereal::BinaryInputArchive& ar)
{
    // Braced initialisation evaluates left to right, the order save_args wrote them.
    return std::tuple<std::decay_t<P>...>{task_codec<std::decay_t<P>>::load(ar)...};
}

template <class R>
void save_result(cereal::BinaryOutputArchive& ar, R& r)
{
    if constexpr (is_shared_ndarray<R>::value) {
        task_codec<R>::save(ar, r, true);
    } else {
        task_codec<R>::save(ar, r);
    }
}

template <class P>
using param_t = std::decay_t<P>;

/// The in-memory encoder: `f(ar)` writes into a fresh archive; returns the bytes.
template <class F>
std::string encode(F&& f)
{
    std::ostringstream os;
    {
        cereal::BinaryOutputArchive ar(os);
        f(ar);
    }
    return std::move(os).str();
}

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

/// Describes the exception in flight (call from a catch block).
inline task_failure describe_current_exception() noexcept
{
    task_failure f;
    try {
        try {
            throw;
        } catch (const not_found& e) {
            f = {exc_not_found, e.code().value(), e.what()};
        } catch (const already_exists& e) {
            f = {exc_already_exists, e.code().value(), e.what()};
        } catch (const permission_denied& e) {
            f = {exc_permission_denied, e.code().value(), e.what()};
        } catch (const out_of_space& e) {
            f = {exc_out_of_space, e.code().value(), e.what()};
        } catch (const dtype_mismatch& e) {
            f = {exc_dtype_mismatch, e.code().value(), e.what()};
        } catch (const format_error& e) {
            f = {exc_format_error, e.code().value(), e.what()};
        } catch (const serialization_error& e) {
            f = {exc_serialization_error, e.code().value(), e.what()};
        } catch (const error& e) {
            f = {exc_error, e.code().value(), e.what()};
        } catch (const cereal::Exception& e) {
            f = {exc_serialization_error, EILSEQ, std::string("cereal: ") + e.what()};
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

inline std::string encode_failure(const task_failure& f)
{
    std::string s(8 + f.message.size(), '\0');
    std::memcpy(&s[0], &f.kind, 4);
    std::memcpy(&s[4], &f.code, 4);
    std::memcpy(&s[8], f.message.data(), f.message.size());
    return s;
}

/// Decodes a failure sent by a worker (untrusted bytes).
inline task_failure decode_failure(std::string_view s)
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

/// Throws, in the caller, the exception a task threw `where` ("map on worker 1 (pid 42)").
[[noreturn]] inline void rethrow_failure_at(const std::string& where, const std::string& fix, const task_failure& f)
{
    const std::string cause = "the task threw: " + f.message;
    const auto code = f.code != 0 ? errno_code(f.code) : errno_code(ECANCELED);
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

/// Throws, in the parent, the exception that a task threw in worker `index`.
[[noreturn]] inline void rethrow_failure(const std::string& op, std::size_t index, long pid, bool in_process,
                                         const task_failure& f)
{
    const std::string where = op + " on worker " + std::to_string(index) + " (pid " + std::to_string(pid) +
                              (in_process ? ", in-process" : "") + ")";
    rethrow_failure_at(where,
                       in_process ? "fix the task or catch this exception"
                                  : "fix the task or catch this exception; the worker keeps running",
                       f);
}

/// The conventional short name of a signal ("SIGKILL"), or "signal N".
inline std::string signal_name(int sig)
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

/// "was killed by signal 9 (SIGKILL)" or "exited with status 3", from a waitpid status.
inline std::string describe_exit(int status, bool known)
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
[[noreturn]] inline void worker_main(int in, int out) noexcept
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
    // Arrays this worker still owns (kept in globals, say) are unlinked: nobody else could reach them.
    (void)ndshm::free_session();
    ::_exit(0);
}

} // namespace detail
} // namespace ndshm

#endif
