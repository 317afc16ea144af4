/// @file mpi_pool.hpp
/// `ndshm::mpi::pool`: fork_pool's call set (run, broadcast, gather, scatter, scatterv, map, map_reduce)
/// over the ranks of an MPI job. One rank, the driver, makes the calls; every other rank is a worker.
/// Workers on the driver's node attach its shared arrays by name, as fork_pool's workers do; workers on
/// other nodes get the rows a task works on by MPI in a node-local segment, and the rows a task writes
/// go back by MPI into the driver's array. A program moves from one machine to a cluster by changing
/// the pool it constructs:
///
///     MPI_Init(&argc, &argv);
///     {
///         ndshm::mpi::pool pool;          // collective; on the workers it serves tasks, then returns
///         if (pool.driver()) {            // rank 0: the same code as with ndshm::fork_pool
///             auto total = pool.map_reduce(&partial_sum, a, ndshm::reduce::sum);
///         }
///     }                                   // the driver's pool ends: the workers' constructors return
///     MPI_Finalize();
///
/// Optional, as ndshm/mpi.hpp: link `ndshm::mpi` (CMake option NDSHM_WITH_MPI).
#ifndef NDSHM_MPI_POOL_HPP
#define NDSHM_MPI_POOL_HPP

#include <mpi.h>

#include <link.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "detail/pool_impl.hpp"
#include "detail/segment_impl.hpp"
#include "error.hpp"
#include "mpi.hpp"
#include "pool.hpp"

namespace ndshm::mpi {
namespace detail {

// ---- code addresses between ranks ------------------------------------------------------------------

/// A code address as its module (the path the dynamic loader knows it by; "" for the program itself)
/// and its offset from where that module is loaded: the same on every rank that runs the same
/// executable, wherever ASLR put it.
struct code_ref {
    std::string module;
    std::uint64_t offset = 0;
    template <class A>
    void serialize(A& ar)
    {
        ar(module, offset);
    }
};

/// The module and offset of `addr`, a function of this process.
/// @throws error if no loaded module holds it
inline code_ref code_ref_of(std::uintptr_t addr)
{
    struct search {
        std::uintptr_t addr;
        code_ref out;
        bool found;
    } s{addr, {}, false};
    dl_iterate_phdr(
        [](dl_phdr_info* info, std::size_t, void* p) -> int {
            auto& q = *static_cast<search*>(p);
            for (std::size_t i = 0; i < info->dlpi_phnum; ++i) {
                const ElfW(Phdr)& ph = info->dlpi_phdr[i];
                const std::uintptr_t start = info->dlpi_addr + ph.p_vaddr;
                if (ph.p_type == PT_LOAD && q.addr >= start && q.addr - start < ph.p_memsz) {
                    q.out.module = info->dlpi_name != nullptr ? info->dlpi_name : "";
                    q.out.offset = q.addr - info->dlpi_addr;
                    q.found = true;
                    return 1;
                }
            }
            return 0;
        },
        &s);
    if (!s.found) {
        core::raise<error>("mpi::pool", "", "a task's function lies in no module the dynamic loader knows",
                           "pass a function of the program or of a shared library it links",
                           make_error_code(errc::invalid_argument));
    }
    return s.out;
}

/// The address, in this process, of the code `c` names: inside an executable segment of the module of
/// that name.
/// @throws error if this process has not loaded the module, or the offset is not code in it
inline std::uintptr_t address_of(const code_ref& c)
{
    struct search {
        const code_ref* c;
        std::uintptr_t out;
        int state; // 0: no such module, 1: not code in it, 2: found
    } s{&c, 0, 0};
    dl_iterate_phdr(
        [](dl_phdr_info* info, std::size_t, void* p) -> int {
            auto& q = *static_cast<search*>(p);
            if (q.c->module != (info->dlpi_name != nullptr ? info->dlpi_name : "")) {
                return 0;
            }
            q.state = 1;
            for (std::size_t i = 0; i < info->dlpi_phnum; ++i) {
                const ElfW(Phdr)& ph = info->dlpi_phdr[i];
                if (ph.p_type == PT_LOAD && (ph.p_flags & PF_X) != 0 && q.c->offset >= ph.p_vaddr &&
                    q.c->offset - ph.p_vaddr < ph.p_memsz) {
                    q.out = info->dlpi_addr + static_cast<std::uintptr_t>(q.c->offset);
                    q.state = 2;
                    return 1;
                }
            }
            return 1;
        },
        &s);
    if (s.state != 2) {
        const std::string module = c.module.empty() ? std::string("the program") : "'" + c.module + "'";
        core::raise<error>("mpi::pool", "",
                           s.state == 0 ? "a task's function is in " + module + ", which this rank has not loaded"
                                        : "a task's function is at an offset that is not code in " + module,
                           "every rank of the pool must run the same executable with the same libraries",
                           make_error_code(errc::invalid_argument));
    }
    return s.out;
}

// ---- messages ----------------------------------------------------------------------------------------

/// Tags on the pool's own communicator: a task (or stop) to a worker, a worker's reply, array bytes.
inline constexpr int tag_task = 0x6e70;
inline constexpr int tag_reply = 0x6e71;
inline constexpr int tag_data = message_tag;
/// The largest single message of array bytes the pool sends (also bounded by the topology's
/// max_message_bytes); a worker that must drop data it cannot store receives it in pieces of this size.
inline constexpr std::size_t pool_piece = std::size_t(64) << 20;

/// An array a task names, and the part of its data that follows the task message (driver to a worker
/// on another node).
struct wire_array {
    std::string dir, name;
    std::uint64_t created = 0;
    std::uint8_t type = 0;
    std::vector<std::uint64_t> shape;
    bool fortran = false;
    std::uint64_t nbytes = 0, first = 0, bytes = 0;
    bool writable = false, exclusive = false;
    template <class A>
    void serialize(A& ar)
    {
        ar(dir, name, created, type, shape, fortran, nbytes, first, bytes, writable, exclusive);
    }
};

struct task_message {
    std::uint32_t kind = 0; // 1: a task, 2: stop
    std::uint64_t id = 0;
    code_ref invoke, fn;
    std::string args;
    std::vector<wire_array> arrays;
    template <class A>
    void serialize(A& ar)
    {
        ar(kind, id, invoke, fn, args, arrays);
    }
};

/// Bytes of array `array` of the task that the task changed, as (offset in the data, length) pairs;
/// their bytes follow the reply, one message (in pieces) per write-back.
struct write_back {
    std::uint32_t array = 0;
    std::vector<std::uint64_t> runs;
    template <class A>
    void serialize(A& ar)
    {
        ar(array, runs);
    }
};

/// An array a task returned: the worker's segment (as the result names it), and either the task's
/// array it is a copy of (`origin`) or its bytes, which follow.
struct result_array {
    std::string dir, name;
    std::uint64_t created = 0;
    std::int64_t origin = -1;
    std::uint8_t type = 0;
    std::vector<std::uint64_t> shape;
    bool fortran = false;
    std::uint64_t nbytes = 0;
    template <class A>
    void serialize(A& ar)
    {
        ar(dir, name, created, origin, type, shape, fortran, nbytes);
    }
};

struct reply_message {
    std::uint64_t id = 0;
    bool ok = true;
    std::string payload; // the encoded result, or the encoded failure
    std::vector<write_back> writes;
    std::vector<result_array> results;
    template <class A>
    void serialize(A& ar)
    {
        ar(id, ok, payload, writes, results);
    }
};

template <class M>
std::string encode_message(const M& m)
{
    return core::encode([&](cereal::BinaryOutputArchive& ar) { ar(m); });
}

template <class M>
M decode_message(std::string_view bytes, const std::string& op)
{
    try {
        core::memory_buf buf(bytes);
        std::istream is(&buf);
        cereal::BinaryInputArchive ar(is);
        M m;
        ar(m);
        return m;
    } catch (const cereal::Exception& e) {
        core::raise<error>(op, "", std::string("a malformed pool message: cereal: ") + e.what(),
                           "every rank of the pool must run the same executable", make_error_code(errc::mpi_failure));
    }
}

/// Waits for a message with `tag` from `source` (MPI_ANY_SOURCE: any) without keeping a core busy:
/// MPI_Iprobe, then sleeps that grow to a millisecond. `idle()` runs once after 100 ms of waiting.
inline MPI_Status wait_message(MPI_Comm c, int source, int tag, const std::string& op,
                               const std::function<void()>& idle = {})
{
    MPI_Status st{};
    const auto start = std::chrono::steady_clock::now();
    bool idled = !idle;
    for (int round = 0;; ++round) {
        int flag = 0;
        check(MPI_Iprobe(source, tag, c, &flag, &st), "MPI_Iprobe", op, "");
        if (flag) {
            return st;
        }
        if (round < 64) {
            continue;
        }
        std::this_thread::sleep_for(std::chrono::microseconds(std::min(1000, 10 * (round - 63))));
        if (!idled && std::chrono::steady_clock::now() - start > std::chrono::milliseconds(100)) {
            idled = true;
            idle();
        }
    }
}

/// Receives the message `st` announced (bytes).
inline std::string recv_message(MPI_Comm c, const MPI_Status& st, const std::string& op)
{
    int n = 0;
    check(MPI_Get_count(&st, MPI_BYTE, &n), "MPI_Get_count", op, "");
    std::string s(static_cast<std::size_t>(std::max(n, 0)), '\0');
    MPI_Status got{};
    check(MPI_Recv(s.empty() ? nullptr : &s[0], n, MPI_BYTE, st.MPI_SOURCE, st.MPI_TAG, c, &got), "MPI_Recv", op, "");
    return s;
}

inline void send_message(MPI_Comm c, const std::string& s, int dest, int tag, const std::string& op)
{
    if (s.size() > static_cast<std::size_t>(INT_MAX)) {
        core::raise<error>(op, "",
                           "a pool message takes " + std::to_string(s.size()) + " bytes, more than MPI can send",
                           "pass large data as a shared_ndarray", core::errno_code(EMSGSIZE));
    }
    check(MPI_Send(s.data(), static_cast<int>(s.size()), MPI_BYTE, dest, tag, c), "MPI_Send", op, "");
}

/// Receives `n` bytes sent with send_bytes(..., piece) and drops them.
inline void drop_bytes(std::size_t n, int source, MPI_Comm c, std::size_t piece, const std::string& op)
{
    std::vector<unsigned char> scratch(std::min(n, piece));
    for (std::size_t off = 0; off < n; off += piece) {
        recv_bytes(scratch.data(), std::min(piece, n - off), source, c, piece, op, "");
    }
}

/// Runs of whole elements (`unit` bytes) that differ between `now` and `before` (n bytes each), as
/// (offset, length) pairs: only what a task changed goes back, so tasks that write different elements
/// of one array do not undo each other's writes.
inline std::vector<std::uint64_t> changed_runs(const unsigned char* now, const unsigned char* before, std::size_t n,
                                               std::size_t unit)
{
    std::vector<std::uint64_t> runs;
    unit = std::max<std::size_t>(unit, 1);
    std::size_t i = 0;
    while (i < n) {
        while (i + 256 <= n && std::memcmp(now + i, before + i, 256) == 0) {
            i += 256;
        }
        while (i < n && std::memcmp(now + i, before + i, std::min(unit, n - i)) == 0) {
            i += unit;
        }
        if (i >= n) {
            break;
        }
        const std::size_t start = i;
        while (i < n && std::memcmp(now + i, before + i, std::min(unit, n - i)) != 0) {
            i += unit;
        }
        runs.push_back(start);
        runs.push_back(std::min(i, n) - start);
    }
    return runs;
}

inline std::vector<std::size_t> to_sizes(const std::vector<std::uint64_t>& v)
{
    return std::vector<std::size_t>(v.begin(), v.end());
}

/// Checks what a peer says about an array before it is trusted with memory.
inline void check_layout(std::uint8_t type, const std::vector<std::uint64_t>& shape, std::uint64_t nbytes,
                         std::uint64_t first, std::uint64_t bytes, const std::string& op)
{
    std::uint64_t n = itemsize(static_cast<dtype>(type));
    bool ok = n != 0 && type <= static_cast<std::uint8_t>(dtype::complex128);
    for (const std::uint64_t d : shape) {
        ok = ok && (d == 0 || n <= UINT64_MAX / d);
        n *= d;
    }
    if (!ok || n != nbytes || first > nbytes || bytes > nbytes - first) {
        core::raise<error>(op, "", "a pool message describes an array that does not add up",
                           "every rank of the pool must run the same executable", make_error_code(errc::mpi_failure));
    }
}

/// A new segment of an array (owned by this process), published.
inline std::shared_ptr<core::mapping> make_segment(std::uint8_t type, const std::vector<std::uint64_t>& shape,
                                                   bool fortran, const std::string& op, core::npy_info& info)
{
    auto m = core::create_array_segment(options{}, static_cast<dtype>(type), to_sizes(shape), fortran, op, info);
    m->publish();
    core::remember_layout(*m, info, core::kind_array);
    return m;
}

/// The sender's name for a segment: what task_codec writes, and what a resolver is asked about.
struct segment_key {
    std::string dir, name;
    std::uint64_t created = 0;
    static segment_key of(const core::mapping& m)
    {
        return {m.loc().dir, m.name(), m.get_trailer() != nullptr ? m.get_trailer()->created_ns : 0};
    }
    bool operator==(const segment_key& o) const { return created == o.created && name == o.name && dir == o.dir; }
};

/// Arrays with segments of their own: a lookup from the sender's name to a mapping of this process.
class segment_table : public core::array_resolver {
public:
    struct entry {
        segment_key key;
        std::shared_ptr<core::mapping> map;
        core::npy_info info;
    };
    std::vector<entry> entries;

    std::shared_ptr<core::mapping> resolve(const std::string& dir, const std::string& name, std::uint64_t created,
                                           core::npy_info& info) override
    {
        const segment_key k{dir, name, created};
        for (const entry& e : entries) {
            if (e.key == k) {
                info = e.info;
                return e.map;
            }
        }
        return nullptr;
    }
};

/// Sets a resolver for a scope.
class resolver_scope {
public:
    explicit resolver_scope(core::array_resolver* r) noexcept
        : m_saved(std::exchange(core::current_array_resolver(), r))
    {
    }
    resolver_scope(const resolver_scope&) = delete;
    resolver_scope& operator=(const resolver_scope&) = delete;
    ~resolver_scope() { core::current_array_resolver() = m_saved; }

private:
    core::array_resolver* m_saved;
};

inline core::npy_info info_of(const core::task_array& t)
{
    core::npy_info info;
    info.type = t.type;
    info.shape = t.shape;
    info.fortran_order = t.fortran;
    info.data_offset = t.data_offset;
    info.size = itemsize(t.type) == 0 ? 0 : t.nbytes / itemsize(t.type);
    info.nbytes = t.nbytes;
    return info;
}

} // namespace detail

/// fork_pool's call set over the ranks of an MPI job; see the file comment for the idiom.
///
/// - **Roles.** The constructor is collective over the communicator. On the driver (rank 0, or the
///   rank passed) it returns at once and the pool takes calls; on every other rank it serves tasks
///   until the driver's pool is destroyed, then returns with driver() false. So every rank constructs
///   the pool, only the driver makes calls (inside `if (pool.driver())`), and collective MPI calls of
///   the program go outside that block. Worker i is the i-th rank other than the driver; size() is the
///   number of workers, and a job of one rank runs every task in the driver, as fork_pool(0) does.
/// - **Tasks** are plain functions, as for fork_pool. Code addresses differ between ranks (separately
///   started processes, ASLR), so each function travels as its module and offset and is found again in
///   the worker: every rank must run the same executable (checked when the pool is made).
/// - **Arrays.** A worker on the driver's node attaches a shared_ndarray argument by name (zero copy,
///   as fork_pool's workers). A worker on another node gets a node-local segment of the array's shape
///   holding the part the task works on (a chunk task's rows, a map piece's elements; the whole array
///   for a plain argument or a Fortran-order chunk); the rest of that segment is unspecified, so a
///   chunk task must not read rows outside its chunk. What the task writes goes back into the
///   driver's array when the task ends: all of a writable chunk (take chunk<const T> for what you only
///   read), and of other writable arrays the elements whose bytes changed. An array a remote task
///   returns comes back by value into a new array the driver owns.
/// - **Errors.** A task's exception is thrown on the driver with the same ndshm type and the worker's
///   message, naming the rank, its worker index, node and pid, after the tasks already started have
///   finished. **A rank that dies** (signal, exit) is not replaced: MPI ends the whole job (mpiexec
///   aborts every rank), unlike fork_pool, which forks a new worker.
/// - Calls are serialised and must come from the driver; nothing else may use the pool's ranks for MPI
///   while the driver's pool lives (the workers are inside the constructor).
class pool : public ::ndshm::detail::pool_calls<pool> {
public:
    /// Collective over `comm`: see the class comment. NDSHM_MPI_EMULATED_NODES (or `topo`'s options)
    /// splits a machine into nodes, so that workers on other "nodes" get their arrays by MPI.
    /// @throws error if the ranks disagree about the driver or run different executables, or an MPI
    ///   call fails (on a worker, while serving: then the job should end)
    explicit pool(MPI_Comm comm = MPI_COMM_WORLD, int driver_rank = 0) : pool(topology(comm), driver_rank) {}

    /// Collective over `topo`'s communicator (the pool uses a duplicate of it).
    explicit pool(const topology& topo, int driver_rank = 0)
        : m_topo(topo), m_piece(std::min(detail::pool_piece, topo.max_message_bytes()))
    {
        const std::string op = "mpi::pool";
        const int size = m_topo.size();
        std::exception_ptr bad;
        try {
            if (driver_rank < 0 || driver_rank >= size) {
                detail::core::raise<error>(op, "", "driver rank " + std::to_string(driver_rank) + " is not a rank",
                                           "pass a rank from 0 to " + std::to_string(size - 1),
                                           make_error_code(errc::invalid_argument));
            }
        } catch (...) {
            bad = std::current_exception();
        }
        detail::agree(m_topo.comm(), m_topo.rank(), bad, op, "");
        m_driver = driver_rank;
        const detail::code_ref probe = detail::code_ref_of(
            reinterpret_cast<std::uintptr_t>(&::ndshm::detail::run_tasks_in_process));
        detail::fingerprint fp;
        fp.add(static_cast<std::uint64_t>(driver_rank)).add(probe.module).add(probe.offset);
        detail::check_same(m_topo.comm(), size, fp.value(),
                           "driver rank " + std::to_string(driver_rank) + ", code offset " +
                               std::to_string(probe.offset),
                           "the driver rank and the executable (every rank must run the same one)", op, "");
        detail::check(MPI_Comm_dup(m_topo.comm(), &m_comm), "MPI_Comm_dup", op, "");
        detail::check(MPI_Comm_set_errhandler(m_comm, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler", op, "");
        const ::ndshm::detail::process_identity me = ::ndshm::detail::this_process();
        std::vector<std::uint64_t> ids(2 * static_cast<std::size_t>(size));
        const std::uint64_t mine[2] = {me.pid, me.start};
        detail::check(MPI_Allgather(mine, 2, MPI_UINT64_T, ids.data(), 2, MPI_UINT64_T, m_comm), "MPI_Allgather", op,
                      "");
        for (int r = 0; r < size; ++r) {
            if (r != m_driver) {
                m_ranks.push_back(r);
            }
            m_pids.push_back(static_cast<long>(ids[2 * static_cast<std::size_t>(r)]));
        }
        m_parent = {ids[2 * static_cast<std::size_t>(m_driver)], ids[2 * static_cast<std::size_t>(m_driver) + 1]};
        if (m_topo.rank() != m_driver) {
            serve();
        }
    }

    pool(const pool&) = delete;
    pool& operator=(const pool&) = delete;

    /// On the driver: tells every worker to stop (their constructors return). Nothing on a worker.
    ~pool()
    {
        if (m_topo.rank() == m_driver && m_comm != MPI_COMM_NULL) {
            detail::task_message stop;
            stop.kind = 2;
            try {
                const std::string s = detail::encode_message(stop);
                for (const int r : m_ranks) {
                    (void)MPI_Send(s.data(), static_cast<int>(s.size()), MPI_BYTE, r, detail::tag_task, m_comm);
                }
            } catch (...) {
            }
        }
        int finalized = 0;
        if (m_comm != MPI_COMM_NULL && MPI_Finalized(&finalized) == MPI_SUCCESS && !finalized) {
            (void)MPI_Comm_free(&m_comm);
        }
    }

    /// True on the rank that makes the calls; false on the workers (whose constructor has returned
    /// because the driver's pool is gone).
    bool driver() const noexcept { return m_topo.rank() == m_driver; }
    /// The driver's rank.
    int driver_rank() const noexcept { return m_driver; }
    /// Number of workers: the ranks other than the driver.
    std::size_t size() const noexcept { return m_ranks.size(); }
    /// Number of workers that calls spread over: size(), or 1 when the driver is the only rank.
    std::size_t concurrency() const noexcept { return std::max<std::size_t>(1, m_ranks.size()); }
    /// The rank of each worker, worker i first.
    const std::vector<int>& ranks() const noexcept { return m_ranks; }
    /// The process id of each worker.
    std::vector<long> pids() const
    {
        std::vector<long> p;
        for (const int r : m_ranks) {
            p.push_back(m_pids[static_cast<std::size_t>(r)]);
        }
        return p;
    }
    /// True if worker `w` runs on the driver's node (it attaches the driver's arrays by name).
    bool shares_memory(std::size_t w) const { return m_topo.node_of(m_ranks.at(w)) == m_topo.node_of(m_driver); }
    /// The topology (nodes) the pool was made with.
    const topology& topo() const noexcept { return m_topo; }

private:
    friend class ::ndshm::detail::pool_calls<pool>;
    /// Tasks list the arrays they name: workers on other nodes get them by MPI.
    static constexpr bool records_arrays = true;

    /// A task in flight on a worker: its index in the call, and the arrays sent with it.
    struct sent {
        long index = -1;
        std::uint64_t id = 0;
        std::vector<detail::core::task_array> arrays;
    };

    static std::string where(const char* op, std::size_t w, int rank, int node, long pid)
    {
        return std::string(op) + " on rank " + std::to_string(rank) + " (worker " + std::to_string(w) + ", node " +
               std::to_string(node) + ", pid " + std::to_string(pid) + ")";
    }

    // ---- the driver ----------------------------------------------------------------------------------

    void execute(const char* op, std::vector<detail::core::task>& tasks, const result_fn& on_result)
    {
        if (!driver()) {
            detail::core::raise<error>(op, "", "only the driver rank makes calls on an mpi::pool",
                                       "make calls inside `if (pool.driver()) { ... }`",
                                       make_error_code(errc::invalid_argument));
        }
        std::lock_guard<std::mutex> call(m_call);
        if (m_ranks.empty()) {
            detail::core::run_tasks_in_process(op, tasks, on_result);
            return;
        }
        std::function<void()> failed;
        const auto fail = [&](std::function<void()> raise) {
            if (!failed) {
                failed = std::move(raise);
            }
        };
        const std::size_t n = m_ranks.size();
        std::vector<std::deque<std::size_t>> fixed(n);
        std::deque<std::size_t> any;
        for (std::size_t i = 0; i < tasks.size(); ++i) {
            if (tasks[i].worker >= 0) {
                fixed[static_cast<std::size_t>(tasks[i].worker) % n].push_back(i);
            } else {
                any.push_back(i);
            }
        }
        std::vector<sent> busy(n);
        std::size_t inflight = 0;
        for (;;) {
            if (!failed) {
                for (std::size_t k = 0; k < n; ++k) {
                    const std::size_t w = (m_rr + k) % n;
                    if (busy[w].index >= 0) {
                        continue;
                    }
                    const bool from_any = fixed[w].empty();
                    std::deque<std::size_t>& q = from_any ? any : fixed[w];
                    if (q.empty()) {
                        continue;
                    }
                    const std::size_t i = q.front();
                    q.pop_front();
                    if (from_any) {
                        m_rr = (w + 1) % n;
                    }
                    try {
                        busy[w] = send_task(op, w, tasks[i]);
                        busy[w].index = static_cast<long>(i);
                        ++inflight;
                    } catch (...) {
                        fail(capture());
                        break;
                    }
                }
            }
            if (inflight == 0) {
                break;
            }
            const MPI_Status st = detail::wait_message(m_comm, MPI_ANY_SOURCE, detail::tag_reply, op);
            const auto it = std::find(m_ranks.begin(), m_ranks.end(), st.MPI_SOURCE);
            if (it == m_ranks.end()) {
                detail::core::raise<error>(op, "",
                                           "a reply from rank " + std::to_string(st.MPI_SOURCE) + ", not a worker",
                                           "report this as a bug in ndshm", make_error_code(errc::mpi_failure));
            }
            const auto w = static_cast<std::size_t>(it - m_ranks.begin());
            sent s = std::move(busy[w]);
            busy[w] = sent{};
            --inflight;
            receive_reply(op, w, st, s, on_result, fail);
        }
        if (failed) {
            failed();
        }
        if (!any.empty() || std::any_of(fixed.begin(), fixed.end(), [](const auto& q) { return !q.empty(); })) {
            detail::core::raise<error>(op, "", "some tasks could not be started", "",
                                       detail::core::errno_code(ECANCELED));
        }
    }

    static std::function<void()> capture()
    {
        std::exception_ptr e = std::current_exception();
        return [e] { std::rethrow_exception(e); };
    }

    /// The arrays a task names, one entry per segment (an array named twice gets the union of the parts).
    static std::vector<detail::core::task_array> merge_arrays(const std::vector<detail::core::task_array>& in)
    {
        std::vector<detail::core::task_array> out;
        for (const detail::core::task_array& a : in) {
            if (!a.map) {
                continue;
            }
            auto it = std::find_if(out.begin(), out.end(),
                                   [&](const detail::core::task_array& b) { return b.map == a.map; });
            if (it == out.end()) {
                out.push_back(a);
                continue;
            }
            const bool same = it->first == a.first && it->bytes == a.bytes;
            const std::size_t lo = std::min(it->first, a.first);
            const std::size_t hi = std::max(it->first + it->bytes, a.first + a.bytes);
            it->first = lo;
            it->bytes = hi - lo;
            it->writable = it->writable || a.writable;
            it->exclusive = it->exclusive && a.exclusive && same;
            it->only_for = it->only_for == a.only_for ? a.only_for : -1;
        }
        return out;
    }

    sent send_task(const char* op, std::size_t w, const detail::core::task& t)
    {
        const int rank = m_ranks[w];
        sent s;
        s.id = ++m_next_id;
        detail::task_message m;
        m.kind = 1;
        m.id = s.id;
        m.invoke = detail::code_ref_of(reinterpret_cast<std::uintptr_t>(t.invoke));
        m.fn = detail::code_ref_of(t.fn);
        if (t.args.size() > detail::core::frame_limit) {
            detail::core::raise<error>(op, "",
                                       "the task's arguments take " + std::to_string(t.args.size()) +
                                           " bytes, more than a pool message may hold",
                                       "pass large data as a shared_ndarray: only its name travels",
                                       detail::core::errno_code(EMSGSIZE));
        }
        m.args = t.args;
        if (!shares_memory(w)) {
            s.arrays = merge_arrays(t.arrays);
            for (detail::core::task_array& a : s.arrays) {
                if (a.only_for >= 0 && static_cast<std::size_t>(a.only_for) != w) {
                    a.first = 0; // another worker's accumulator: this task never touches it
                    a.bytes = 0;
                }
                const detail::segment_key k = detail::segment_key::of(*a.map);
                detail::wire_array x;
                x.dir = k.dir;
                x.name = k.name;
                x.created = k.created;
                x.type = static_cast<std::uint8_t>(a.type);
                x.shape.assign(a.shape.begin(), a.shape.end());
                x.fortran = a.fortran;
                x.nbytes = a.nbytes;
                x.first = a.first;
                x.bytes = a.bytes;
                x.writable = a.writable;
                x.exclusive = a.exclusive;
                m.arrays.push_back(std::move(x));
            }
        }
        detail::send_message(m_comm, detail::encode_message(m), rank, detail::tag_task, op);
        for (const detail::core::task_array& a : s.arrays) {
            detail::send_bytes(a.map->base() + a.data_offset + a.first, a.bytes, rank, m_comm, m_piece, op,
                               a.map->name());
        }
        return s;
    }

    void receive_reply(const char* op, std::size_t w, const MPI_Status& st, const sent& s, const result_fn& on_result,
                       const std::function<void(std::function<void()>)>& fail)
    {
        const int rank = m_ranks[w];
        const auto r = detail::decode_message<detail::reply_message>(detail::recv_message(m_comm, st, op), op);
        if (r.id != s.id) {
            detail::core::raise<error>(op, "", "rank " + std::to_string(rank) + " answered another task",
                                       "report this as a bug in ndshm", make_error_code(errc::mpi_failure));
        }
        // What the task wrote, into the driver's arrays.
        std::vector<unsigned char> buf;
        for (const detail::write_back& b : r.writes) {
            std::size_t total = 0;
            bool fits = b.array < s.arrays.size() && b.runs.size() % 2 == 0;
            for (std::size_t j = 0; fits && j < b.runs.size(); j += 2) {
                const detail::core::task_array& a = s.arrays[b.array];
                fits = b.runs[j] >= a.first && b.runs[j] <= a.first + a.bytes &&
                       b.runs[j + 1] <= a.first + a.bytes - b.runs[j];
                total += static_cast<std::size_t>(b.runs[j + 1]);
            }
            if (!fits || !s.arrays[b.array].map->writable()) {
                detail::core::raise<error>(
                    op, "", "rank " + std::to_string(rank) + " sent back bytes outside the task's arrays",
                    "every rank of the pool must run the same executable", make_error_code(errc::mpi_failure));
            }
            const detail::core::task_array& a = s.arrays[b.array];
            unsigned char* data = a.map->base() + a.data_offset;
            if (b.runs.size() == 2) {
                detail::recv_bytes(data + b.runs[0], total, rank, m_comm, m_piece, op, a.map->name());
            } else {
                buf.resize(total);
                detail::recv_bytes(buf.data(), total, rank, m_comm, m_piece, op, a.map->name());
                std::size_t at = 0;
                for (std::size_t j = 0; j < b.runs.size(); j += 2) {
                    std::memcpy(data + b.runs[j], buf.data() + at, static_cast<std::size_t>(b.runs[j + 1]));
                    at += static_cast<std::size_t>(b.runs[j + 1]);
                }
            }
        }
        // Arrays the task returned: the driver's own (a task's argument), or new arrays it owns.
        detail::segment_table results;
        for (const detail::result_array& x : r.results) {
            detail::segment_table::entry e;
            e.key = {x.dir, x.name, x.created};
            if (x.origin >= 0 && static_cast<std::size_t>(x.origin) < s.arrays.size()) {
                const detail::core::task_array& a = s.arrays[static_cast<std::size_t>(x.origin)];
                e.map = a.map;
                e.info = detail::info_of(a);
            } else {
                detail::check_layout(x.type, x.shape, x.nbytes, 0, x.nbytes, op);
                e.map = detail::make_segment(x.type, x.shape, x.fortran, "receive a task's result", e.info);
                detail::recv_bytes(e.map->base() + e.info.data_offset, e.info.nbytes, rank, m_comm, m_piece, op,
                                   e.map->name());
            }
            results.entries.push_back(std::move(e));
        }
        if (!r.ok) {
            const detail::core::task_failure f = detail::core::decode_failure(r.payload);
            const std::string at = where(op, w, rank, m_topo.node_of(rank), m_pids[static_cast<std::size_t>(rank)]);
            fail([at, f] {
                detail::core::rethrow_failure_at(at, "fix the task or catch this exception; the worker keeps running",
                                                 f);
            });
            return;
        }
        if (on_result) {
            try {
                detail::resolver_scope scope(&results);
                on_result(static_cast<std::size_t>(s.index), r.payload);
            } catch (...) {
                fail(capture());
            }
        }
    }

    // ---- a worker ------------------------------------------------------------------------------------

    /// A worker's copies of arrays that live on another node, kept between tasks (until the worker has
    /// been idle for 100 ms), and the copies the current task uses.
    class local_copies : public detail::core::array_resolver {
    public:
        struct copy {
            detail::segment_key key;
            std::shared_ptr<detail::core::mapping> map;
            detail::core::npy_info info;
        };
        struct in_task {
            std::size_t copy = 0;
            detail::wire_array wire;
            std::vector<unsigned char> before; // the part as it came, for a non-exclusive writable array
        };
        std::vector<copy> cache;
        std::vector<in_task> task;

        std::shared_ptr<detail::core::mapping> resolve(const std::string& dir, const std::string& name,
                                                       std::uint64_t created, detail::core::npy_info& info) override
        {
            const detail::segment_key k{dir, name, created};
            for (const in_task& t : task) {
                if (cache[t.copy].key == k) {
                    info = cache[t.copy].info;
                    return cache[t.copy].map;
                }
            }
            detail::core::raise<error>("mpi::pool worker", name,
                                       "the task names an array of the driver's node that was not sent with it",
                                       "pass shared arrays as the task's arguments (not inside other values)",
                                       make_error_code(errc::invalid_argument));
        }

        /// The copy of `w`, made if this worker has none of that layout.
        std::size_t get(const detail::wire_array& w, const std::string& op)
        {
            const detail::segment_key k{w.dir, w.name, w.created};
            for (std::size_t i = 0; i < cache.size(); ++i) {
                const copy& c = cache[i];
                if (c.key == k && c.info.type == static_cast<dtype>(w.type) && c.info.fortran_order == w.fortran &&
                    c.info.shape == detail::to_sizes(w.shape)) {
                    return i;
                }
            }
            cache.erase(std::remove_if(cache.begin(), cache.end(), [&](const copy& c) { return c.key == k; }),
                        cache.end());
            copy c;
            c.key = k;
            c.map = detail::make_segment(w.type, w.shape, w.fortran, op, c.info);
            cache.push_back(std::move(c));
            return cache.size() - 1;
        }
    };

    /// The worker's loop: run tasks until the driver says stop.
    void serve()
    {
        const std::string op = "mpi::pool worker";
        const auto w = static_cast<std::size_t>(std::find(m_ranks.begin(), m_ranks.end(), m_topo.rank()) -
                                                m_ranks.begin());
        detail::core::worker_state& ws = detail::core::current_worker();
        const detail::core::worker_state saved = ws;
        ws.info = worker_info{true, w, m_ranks.size()};
        ws.parent = m_parent;
        detail::core::worker_mapping_cache& attached = detail::core::worker_mappings();
        const bool was_enabled = attached.enabled;
        attached.enabled = true;
        local_copies copies;
        const bool local = m_topo.node() == m_topo.node_of(m_driver);
        std::string result;
        for (;;) {
            const MPI_Status st = detail::wait_message(m_comm, m_driver, detail::tag_task, op, [&] {
                attached.clear(); // idle: let go of the driver's arrays and of the copies
                copies.cache.clear();
            });
            const auto m = detail::decode_message<detail::task_message>(detail::recv_message(m_comm, st, op), op);
            if (m.kind != 1) {
                break;
            }
            detail::reply_message r;
            r.id = m.id;
            std::exception_ptr failure;
            // The arrays' parts, into this worker's copies (all received even if one cannot be stored).
            copies.task.clear();
            for (const detail::wire_array& x : m.arrays) {
                if (failure) {
                    detail::drop_bytes(static_cast<std::size_t>(x.bytes), m_driver, m_comm, m_piece, op);
                    continue;
                }
                try {
                    detail::check_layout(x.type, x.shape, x.nbytes, x.first, x.bytes, op);
                    local_copies::in_task t;
                    t.copy = copies.get(x, op);
                    t.wire = x;
                    copies.task.push_back(std::move(t));
                } catch (...) {
                    failure = std::current_exception();
                    detail::drop_bytes(static_cast<std::size_t>(x.bytes), m_driver, m_comm, m_piece, op);
                    continue;
                }
                local_copies::in_task& t = copies.task.back();
                unsigned char* part = copies.cache[t.copy].map->base() + copies.cache[t.copy].info.data_offset +
                                      x.first;
                detail::recv_bytes(part, static_cast<std::size_t>(x.bytes), m_driver, m_comm, m_piece, op, x.name);
                if (x.writable && !x.exclusive) {
                    t.before.assign(part, part + x.bytes);
                }
            }
            detail::core::array_recorder returned;
            returned.keep = true;
            try {
                if (failure) {
                    std::rethrow_exception(failure);
                }
                const auto invoke = reinterpret_cast<detail::core::invoker_fn>(detail::address_of(m.invoke));
                const std::uintptr_t fn = detail::address_of(m.fn);
                // On another node than the driver's, names of the driver's segments mean nothing: arrays are
                // this worker's copies, and returned arrays travel by value.
                detail::resolver_scope scope(local ? nullptr : &copies);
                detail::core::array_recorder* const outer = std::exchange(detail::core::current_array_recorder(),
                                                                          local ? nullptr : &returned);
                struct restore {
                    detail::core::array_recorder* outer;
                    ~restore() { detail::core::current_array_recorder() = outer; }
                } undo{outer};
                result.clear();
                invoke(fn, m.args, result);
                if (result.size() > detail::core::frame_limit) {
                    detail::core::raise<error>(
                        "return a task result", "",
                        "the result takes " + std::to_string(result.size()) + " bytes, more than the " +
                            std::to_string(detail::core::frame_limit) + " a pool message may hold",
                        "return a shared_ndarray instead", detail::core::errno_code(EMSGSIZE));
                }
                r.payload = std::move(result);
            } catch (...) {
                r.ok = false;
                r.payload = detail::core::encode_failure(detail::core::describe_current_exception());
                returned.arrays.clear();
            }
            // What the task wrote goes back (also when it threw, as fork_pool's workers' writes stay).
            std::vector<const unsigned char*> sources;
            for (std::size_t i = 0; i < copies.task.size(); ++i) {
                const local_copies::in_task& t = copies.task[i];
                if (!t.wire.writable) {
                    continue;
                }
                const unsigned char* data = copies.cache[t.copy].map->base() + copies.cache[t.copy].info.data_offset;
                detail::write_back b;
                b.array = static_cast<std::uint32_t>(i);
                if (t.wire.exclusive) {
                    if (t.wire.bytes > 0) {
                        b.runs = {t.wire.first, t.wire.bytes};
                    }
                } else {
                    b.runs = detail::changed_runs(data + t.wire.first, t.before.data(),
                                                  static_cast<std::size_t>(t.wire.bytes),
                                                  itemsize(static_cast<dtype>(t.wire.type)));
                    for (std::size_t j = 0; j < b.runs.size(); j += 2) {
                        b.runs[j] += t.wire.first;
                    }
                }
                if (!b.runs.empty()) {
                    r.writes.push_back(std::move(b));
                    sources.push_back(data);
                }
            }
            for (const detail::core::task_array& a : returned.arrays) {
                detail::result_array x;
                const detail::segment_key k = detail::segment_key::of(*a.map);
                x.dir = k.dir;
                x.name = k.name;
                x.created = k.created;
                for (std::size_t i = 0; i < copies.task.size(); ++i) {
                    if (copies.cache[copies.task[i].copy].map == a.map) {
                        x.origin = static_cast<std::int64_t>(i);
                    }
                }
                x.type = static_cast<std::uint8_t>(a.type);
                x.shape.assign(a.shape.begin(), a.shape.end());
                x.fortran = a.fortran;
                x.nbytes = a.nbytes;
                r.results.push_back(std::move(x));
            }
            detail::send_message(m_comm, detail::encode_message(r), m_driver, detail::tag_reply, op);
            std::vector<unsigned char> buf;
            for (std::size_t i = 0; i < r.writes.size(); ++i) {
                const detail::write_back& b = r.writes[i];
                if (b.runs.size() == 2) {
                    detail::send_bytes(sources[i] + b.runs[0], static_cast<std::size_t>(b.runs[1]), m_driver, m_comm,
                                       m_piece, op, "");
                    continue;
                }
                buf.clear();
                for (std::size_t j = 0; j < b.runs.size(); j += 2) {
                    buf.insert(buf.end(), sources[i] + b.runs[j], sources[i] + b.runs[j] + b.runs[j + 1]);
                }
                detail::send_bytes(buf.data(), buf.size(), m_driver, m_comm, m_piece, op, "");
            }
            for (std::size_t i = 0; i < returned.arrays.size(); ++i) {
                if (r.results[i].origin < 0) {
                    const detail::core::task_array& a = returned.arrays[i];
                    detail::send_bytes(a.map->base() + a.data_offset, a.nbytes, m_driver, m_comm, m_piece, op,
                                       a.map->name());
                }
            }
            copies.task.clear();
        }
        copies.cache.clear();
        attached.clear();
        attached.enabled = was_enabled;
        ws = saved;
    }

    topology m_topo;
    std::size_t m_piece; // largest message of array bytes
    MPI_Comm m_comm = MPI_COMM_NULL;
    int m_driver = 0;
    std::vector<int> m_ranks;
    std::vector<long> m_pids; // of every rank
    ::ndshm::detail::process_identity m_parent;
    std::mutex m_call;
    std::uint64_t m_next_id = 0;
    std::size_t m_rr = 0;
};

} // namespace ndshm::mpi

#endif // NDSHM_MPI_POOL_HPP
