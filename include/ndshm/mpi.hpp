/// @file mpi.hpp
/// One copy per node in an MPI job: arrays, composite objects and store datasets that each node's
/// leader rank puts into an ordinary ndshm segment, which the other ranks of the node attach by name.
/// Data moves between nodes with MPI (leader to leader); inside a node nothing is copied.
///
///     MPI_Init(&argc, &argv);
///     {
///         ndshm::mpi::topology topo;                              // MPI_COMM_WORLD, split by node
///         auto a = ndshm::mpi::node_array<double>::create(topo, {n, 3}); // one segment per node
///         if (topo.rank() == 0) { fill(a.array()); }              // rank 0 writes its node's copy
///         a.bcast(0);                                             // every node's copy = rank 0's
///         double s = xt::sum(a.view())();                         // every rank reads, no copy
///         a.release();                                            // collective: leaders unlink
///     }
///     MPI_Finalize();
///
/// Optional: link `ndshm::mpi` (CMake option NDSHM_WITH_MPI, MPI 3.0 or later). No other ndshm
/// header but mpi_pool.hpp (fork_pool's calls over MPI ranks) includes this one or <mpi.h>.
///
/// Collectives: every static factory and every member documented as collective must be called by
/// every rank of the topology's communicator, in the same order, with the same arguments (except
/// those significant on the root only). Where it is cheap, ndshm checks that the ranks agree (dtype,
/// shape, order, root, key) and throws the same ndshm::error on every rank if they do not. A failure
/// on one rank (a full /dev/shm on one node, a missing file) is reported on every rank: the ranks that
/// failed throw their own exception, the others one of the same class that quotes it, so no rank is
/// left waiting in a collective. MPI errors become ndshm::error (code ndshm::errc::mpi_failure) with
/// MPI's own description; ndshm sets MPI_ERRORS_RETURN on its own communicators and never aborts.
///
/// Lifetime: a node's segment is owned by the rank that created it (the node's leader; the root for
/// node_object::from_root on the root's node). `release()` is the collective end: every rank of the
/// node drops its handles, then the owner unlinks the name, so the node's memory is returned as soon
/// as the last mapping goes. Destroying an object without release() is local and safe: the owner's
/// last handle unlinks the name, other ranks keep their mappings. If the job dies, the segments are
/// ordinary segments of a dead creator: `ndshm gc` removes them.
#ifndef NDSHM_MPI_HPP
#define NDSHM_MPI_HPP

#include <mpi.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "detail/array_handle.hpp"
#include "detail/npy.hpp"
#include "detail/object_format.hpp"
#include "detail/segment_impl.hpp"
#include "detail/xtensor_compat.hpp"
#include "error.hpp"
#include "file.hpp"
#include "object.hpp"
#include "options.hpp"
#include "shared_ndarray.hpp"
#include "shared_tensor.hpp"
#include "store.hpp"

#if !defined(MPI_VERSION) || MPI_VERSION < 3
#error "ndshm/mpi.hpp needs MPI 3.0 or later (MPI_Comm_split_type)"
#endif

namespace ndshm::mpi {

class topology;
class node_object;
class node_store;
template <class T, std::size_t N>
class basic_node_array;

namespace detail {

namespace core = ::ndshm::detail;

/// The environment variable that splits every machine into that many emulated nodes (see topology).
inline constexpr const char* emulated_nodes_variable = "NDSHM_MPI_EMULATED_NODES";

/// Tag of ndshm's point-to-point messages (on ndshm's own duplicate of the communicator).
inline constexpr int message_tag = 0x6e64;

/// Throws ndshm::error for an MPI call that returned `rc`, with MPI's description of it.
[[noreturn, gnu::noinline, gnu::cold]] inline void raise_mpi(int rc, const char* call, const std::string& op,
                                                             const std::string& name)
{
    char text[MPI_MAX_ERROR_STRING + 1] = {};
    int len = 0;
    std::string what;
    if (MPI_Error_string(rc, text, &len) == MPI_SUCCESS && len > 0) {
        what.assign(text, static_cast<std::size_t>(std::min(len, MPI_MAX_ERROR_STRING)));
    } else {
        what = "unknown MPI error";
    }
    int cls = rc;
    if (MPI_Error_class(rc, &cls) != MPI_SUCCESS) {
        cls = rc;
    }
    core::raise<error>(op, name,
                       std::string(call) + " failed: " + what + " (MPI error code " + std::to_string(rc) + ", class " +
                           std::to_string(cls) + ")",
                       "every rank of the communicator must make the same ndshm::mpi calls in the same order; if "
                       "they do, check the MPI installation and how the job was launched",
                       make_error_code(errc::mpi_failure));
}

/// Throws unless `rc` is MPI_SUCCESS.
inline void check(int rc, const char* call, const std::string& op, const std::string& name)
{
    if (rc != MPI_SUCCESS) {
        raise_mpi(rc, call, op, name);
    }
}

/// A barrier that also orders this process's memory accesses to shared segments around it.
inline void barrier(MPI_Comm c, const std::string& op, const std::string& name)
{
    std::atomic_thread_fence(std::memory_order_seq_cst);
    check(MPI_Barrier(c), "MPI_Barrier", op, name);
    std::atomic_thread_fence(std::memory_order_seq_cst);
}

/// MPI_Bcast of `n` bytes in messages of at most `chunk` bytes (MPI counts are int).
inline void bcast_bytes(void* p, std::size_t n, int root, MPI_Comm c, std::size_t chunk, const std::string& op,
                        const std::string& name)
{
    auto* b = static_cast<unsigned char*>(p);
    for (std::size_t off = 0; off < n; off += chunk) {
        const std::size_t k = std::min(chunk, n - off);
        check(MPI_Bcast(b + off, static_cast<int>(k), MPI_BYTE, root, c), "MPI_Bcast", op, name);
    }
}

/// MPI_Send of `n` bytes to `dest`, in messages of at most `chunk` bytes.
inline void send_bytes(const void* p, std::size_t n, int dest, MPI_Comm c, std::size_t chunk, const std::string& op,
                       const std::string& name)
{
    const auto* b = static_cast<const unsigned char*>(p);
    for (std::size_t off = 0; off < n; off += chunk) {
        const std::size_t k = std::min(chunk, n - off);
        check(MPI_Send(b + off, static_cast<int>(k), MPI_BYTE, dest, message_tag, c), "MPI_Send", op, name);
    }
}

/// MPI_Recv of `n` bytes from `source`, in messages of at most `chunk` bytes.
inline void recv_bytes(void* p, std::size_t n, int source, MPI_Comm c, std::size_t chunk, const std::string& op,
                       const std::string& name)
{
    auto* b = static_cast<unsigned char*>(p);
    for (std::size_t off = 0; off < n; off += chunk) {
        const std::size_t k = std::min(chunk, n - off);
        check(MPI_Recv(b + off, static_cast<int>(k), MPI_BYTE, source, message_tag, c, MPI_STATUS_IGNORE), "MPI_Recv",
              op, name);
    }
}

/// MPI_Bcast of a string (its length first).
inline void bcast_string(std::string& s, int root, MPI_Comm c, const std::string& op, const std::string& name)
{
    unsigned long long n = s.size();
    check(MPI_Bcast(&n, 1, MPI_UNSIGNED_LONG_LONG, root, c), "MPI_Bcast", op, name);
    s.resize(static_cast<std::size_t>(n));
    bcast_bytes(s.empty() ? nullptr : &s[0], s.size(), root, c, INT_MAX, op, name);
}

/// The exception classes that travel between ranks.
enum class error_kind : int {
    error,
    not_found,
    already_exists,
    permission_denied,
    out_of_space,
    dtype_mismatch,
    format_error,
    serialization_error,
    other,
};

/// What a rank's exception was: its class, its code (if ndshm or errno) and its message.
struct failure {
    error_kind kind = error_kind::other;
    int category = 0; ///< 0: no code that travels, 1: std::generic_category(), 2: ndshm::error_category()
    int value = 0;
    std::string what;
};

inline void set_code(failure& f, const error& e)
{
    f.what = e.what();
    if (e.code().category() == std::generic_category()) {
        f.category = 1;
    } else if (e.code().category() == error_category()) {
        f.category = 2;
    }
    f.value = e.code().value();
}

inline failure describe(const std::exception_ptr& p)
{
    failure f;
    try {
        std::rethrow_exception(p);
    } catch (const not_found& e) {
        f.kind = error_kind::not_found;
        set_code(f, e);
    } catch (const already_exists& e) {
        f.kind = error_kind::already_exists;
        set_code(f, e);
    } catch (const permission_denied& e) {
        f.kind = error_kind::permission_denied;
        set_code(f, e);
    } catch (const out_of_space& e) {
        f.kind = error_kind::out_of_space;
        set_code(f, e);
    } catch (const dtype_mismatch& e) {
        f.kind = error_kind::dtype_mismatch;
        set_code(f, e);
    } catch (const format_error& e) {
        f.kind = error_kind::format_error;
        set_code(f, e);
    } catch (const serialization_error& e) {
        f.kind = error_kind::serialization_error;
        set_code(f, e);
    } catch (const error& e) {
        f.kind = error_kind::error;
        set_code(f, e);
    } catch (const std::exception& e) {
        f.what = e.what();
    } catch (...) {
        f.what = "an exception that is not a std::exception";
    }
    return f;
}

/// Throws, on a rank that did not fail, the exception of rank `rank`'s class quoting its message.
[[noreturn]] inline void raise_remote(const failure& f, int rank, const std::string& op, const std::string& name)
{
    std::string what = f.what;
    if (what.rfind("ndshm: ", 0) == 0) {
        what.erase(0, 7);
    }
    const std::string cause = "rank " + std::to_string(rank) + " failed: " + what;
    const std::error_code code = f.category == 1   ? std::error_code(f.value, std::generic_category())
                                 : f.category == 2 ? std::error_code(f.value, error_category())
                                                   : make_error_code(errc::mpi_failure);
    switch (f.kind) {
    case error_kind::not_found:
        core::raise<not_found>(op, name, cause, "", code);
    case error_kind::already_exists:
        core::raise<already_exists>(op, name, cause, "", code);
    case error_kind::permission_denied:
        core::raise<permission_denied>(op, name, cause, "", code);
    case error_kind::out_of_space:
        core::raise<out_of_space>(op, name, cause, "", code);
    case error_kind::dtype_mismatch:
        core::raise<dtype_mismatch>(op, name, cause, "", code);
    case error_kind::format_error:
        core::raise<format_error>(op, name, cause, "", code);
    case error_kind::serialization_error:
        core::raise<serialization_error>(op, name, cause, "", code);
    case error_kind::error:
    case error_kind::other:
        break;
    }
    core::raise<error>(op, name, cause, "", code);
}

/// Every rank of `c` learns whether any rank failed (`local` set). If one did, every rank throws: the
/// ranks that failed their own exception, the others one of the same class that quotes the lowest
/// failed rank's message. Costs one MPI_Allreduce of an int when nothing failed.
inline void agree(MPI_Comm c, int rank, const std::exception_ptr& local, const std::string& op, const std::string& name)
{
    const int mine = local ? rank : INT_MAX;
    int first = INT_MAX;
    try {
        check(MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, c), "MPI_Allreduce", op, name);
        if (first == INT_MAX) {
            return;
        }
        failure f;
        if (rank == first) {
            f = describe(local);
        }
        int head[3] = {static_cast<int>(f.kind), f.category, f.value};
        check(MPI_Bcast(head, 3, MPI_INT, first, c), "MPI_Bcast", op, name);
        f.kind = static_cast<error_kind>(head[0]);
        f.category = head[1];
        f.value = head[2];
        bcast_string(f.what, first, c, op, name);
        if (!local) {
            raise_remote(f, first, op, name);
        }
    } catch (const error&) {
        if (!local) {
            throw;
        }
    }
    std::rethrow_exception(local);
}

/// FNV-1a over 64-bit words: what a rank passed to a collective, compared across ranks.
class fingerprint {
public:
    fingerprint& add(std::uint64_t v) noexcept
    {
        for (int i = 0; i < 8; ++i) {
            m_h ^= (v >> (8 * i)) & 0xffu;
            m_h *= 1099511628211ull;
        }
        return *this;
    }
    fingerprint& add(const std::string& s) noexcept
    {
        add(s.size());
        for (const char c : s) {
            m_h ^= static_cast<unsigned char>(c);
            m_h *= 1099511628211ull;
        }
        return *this;
    }
    template <class S>
    fingerprint& add_shape(const S& shape) noexcept
    {
        add(shape.size());
        for (const auto d : shape) {
            add(static_cast<std::uint64_t>(d));
        }
        return *this;
    }
    std::uint64_t value() const noexcept { return m_h; }

private:
    std::uint64_t m_h = 14695981039346656037ull;
};

/// Throws the same ndshm::error on every rank of `c` unless every rank passed the same `fp`.
/// `mine` says in words what this rank passed, `about` what is compared. One MPI_Allreduce of two
/// 64-bit words when the ranks agree.
inline void check_same(MPI_Comm c, int size, std::uint64_t fp, const std::string& mine, const std::string& about,
                       const std::string& op, const std::string& name)
{
    std::uint64_t in[2] = {fp, ~fp};
    std::uint64_t out[2] = {0, 0};
    check(MPI_Allreduce(in, out, 2, MPI_UINT64_T, MPI_MAX, c), "MPI_Allreduce", op, name);
    if (out[0] == ~out[1]) { // the largest and the smallest value agree
        return;
    }
    // The ranks disagree: every rank learns who differs from rank 0, and what each of the two passed.
    std::vector<std::uint64_t> all(static_cast<std::size_t>(size));
    check(MPI_Allgather(&fp, 1, MPI_UINT64_T, all.data(), 1, MPI_UINT64_T, c), "MPI_Allgather", op, name);
    int other = 0;
    std::string others;
    int listed = 0;
    for (std::size_t r = 1; r < all.size(); ++r) {
        if (all[r] != all[0]) {
            other = other == 0 ? static_cast<int>(r) : other;
            if (listed++ == 8) {
                others += ", ...";
                break;
            }
            others += (others.empty() ? "" : ", ") + std::to_string(r);
        }
    }
    std::string first = mine;
    bcast_string(first, 0, c, op, name);
    std::string second = mine;
    bcast_string(second, other, c, op, name);
    core::raise<error>(op, name,
                       "the ranks disagree about " + about + ": rank 0 passed " + first + ", rank " +
                           std::to_string(other) + " passed " + second + " (rank(s) " + others + " differ from rank 0)",
                       "a collective call needs the same arguments on every rank of the communicator",
                       make_error_code(errc::invalid_argument));
}

/// What a topology knows; shared by the topology and everything made with it.
struct topology_state {
    MPI_Comm comm = MPI_COMM_NULL;    ///< ndshm's duplicate of the user's communicator
    MPI_Comm node = MPI_COMM_NULL;    ///< the ranks of this node
    MPI_Comm leaders = MPI_COMM_NULL; ///< the node leaders (MPI_COMM_NULL on other ranks)
    int rank = 0;
    int size = 0;
    int node_index = 0;
    int node_count = 0;
    int node_rank = 0;
    int node_size = 0;
    int emulated = 1;
    std::size_t max_message = std::size_t(1) << 30;
    std::vector<int> node_of;   ///< node of each rank of comm
    std::vector<int> leader_of; ///< rank (in comm) of each node's leader

    topology_state() = default;
    topology_state(const topology_state&) = delete;
    topology_state& operator=(const topology_state&) = delete;
    ~topology_state()
    {
        int finalized = 0;
        if (MPI_Finalized(&finalized) != MPI_SUCCESS || finalized) {
            return; // freeing a communicator after MPI_Finalize is erroneous: the process is ending
        }
        for (MPI_Comm* c : {&leaders, &node, &comm}) {
            if (*c != MPI_COMM_NULL) {
                (void)MPI_Comm_free(c);
            }
        }
    }

    bool leader() const noexcept { return node_rank == 0; }
    /// The rank of `r` (a rank of comm) in its node's communicator: ranks are ordered as in comm.
    int node_rank_of(int r) const
    {
        int k = 0;
        for (int q = 0; q < r; ++q) {
            k += node_of[static_cast<std::size_t>(q)] == node_of[static_cast<std::size_t>(r)] ? 1 : 0;
        }
        return k;
    }
    void check_root(int root, const std::string& op, const std::string& name, const char* what = "root") const
    {
        if (root < 0 || root >= size) {
            core::raise<error>(op, name,
                               std::string(what) + " " + std::to_string(root) +
                                   " is not a rank of the communicator (size " + std::to_string(size) + ")",
                               "pass a rank from 0 to " + std::to_string(size - 1),
                               make_error_code(errc::invalid_argument));
        }
    }
};

/// The number of emulated nodes per machine: `requested`, else $NDSHM_MPI_EMULATED_NODES, else 1.
inline int emulated_nodes_from(int requested)
{
    if (requested < 0) {
        core::raise<error>("topology", "", "emulated_nodes is " + std::to_string(requested),
                           "pass 0 (the environment decides), or the number of nodes per machine",
                           make_error_code(errc::invalid_argument));
    }
    if (requested > 0) {
        return requested;
    }
    const char* env = std::getenv(emulated_nodes_variable);
    if (env == nullptr || *env == '\0') {
        return 1;
    }
    char* end = nullptr;
    errno = 0;
    const long v = std::strtol(env, &end, 10);
    if (errno != 0 || end == env || *end != '\0' || v < 1 || v > INT_MAX) {
        core::raise<error>("topology", "",
                           std::string(emulated_nodes_variable) + "='" + env + "' is not a positive integer",
                           "set it to the number of nodes to emulate on each machine (for example 2), or unset it",
                           make_error_code(errc::invalid_argument));
    }
    return static_cast<int>(v);
}

/// "float64 C-order (4, 5)": what a rank passed, for messages.
template <class S>
std::string describe_array(ndshm::dtype t, bool fortran, const S& shape)
{
    return std::string(dtype_name(t)) + (fortran ? " Fortran-order " : " C-order ") + core::shape_string(shape);
}

/// The name to create node `node`'s segment under: generated, or `<options::name>_<node>`.
inline options node_options(const options& opt, int node)
{
    options o = opt;
    if (!o.name.empty()) {
        o.name = core::segment_name(o.name) + "_" + std::to_string(node);
    }
    o.read_only = false;
    return o;
}

/// Options with which the other ranks of a node attach the segment its owner created.
inline options attach_options(const options& opt)
{
    options o = opt;
    o.name.clear();
    o.read_only = false;
    return o;
}

/// A segment name and a success flag, broadcast on a node: the fixed-size message of create.
struct name_message {
    char bytes[264] = {};

    void set(const std::string& name)
    {
        bytes[0] = 1;
        std::memcpy(bytes + 1, name.data(), std::min(name.size(), sizeof bytes - 2));
    }
    bool ok() const noexcept { return bytes[0] == 1; }
    std::string name() const { return std::string(bytes + 1); }
    void bcast(int root, MPI_Comm c, const std::string& op)
    {
        check(MPI_Bcast(bytes, static_cast<int>(sizeof bytes), MPI_CHAR, root, c), "MPI_Bcast", op, "");
    }
};

/// The collective end of a node's segment: every rank but the owner drops its handle (`drop`), the
/// owner unlinks the name once all have, then drops its own. After it, the name is gone on every rank.
/// @throws on the ranks of a node whose ranks name different segments; the owner if unlink fails
template <class Drop>
void release_node_segment(const topology_state& s, const std::shared_ptr<core::mapping>& m, Drop&& drop,
                          const std::string& op)
{
    const std::string name = m ? m->name() : std::string();
    fingerprint fp;
    fp.add(name);
    check_same(s.node, s.node_size, fp.value(), name.empty() ? "an empty handle" : "'" + name + "'",
               "which node segment to release", op, name);
    const bool owner = m && m->owned();
    std::shared_ptr<core::mapping> keep = owner ? m : nullptr;
    if (!owner) {
        drop();
    }
    barrier(s.node, op, name);
    int err = 0;
    if (owner) {
        keep->disown();
        err = core::unlink_location(keep->loc());
        keep.reset();
        drop();
    }
    barrier(s.node, op, name);
    if (err != 0 && err != ENOENT) {
        core::raise_errno(op, name, err, "unlink");
    }
}

/// A pointer to `e`'s elements in C order: `e`'s own storage if it is a C-order container of T, else
/// `tmp` after copying `e` into it.
template <class T, class E>
const T* c_order_data(const E& e, xt::xarray<T>& tmp)
{
    using D = std::decay_t<E>;
    if constexpr (core::is_container<D>::value) {
        if constexpr (std::is_same_v<std::remove_const_t<std::remove_pointer_t<decltype(e.data())>>, T>) {
            if (core::contiguous_layout(e.shape(), e.strides()) == xt::layout_type::row_major) {
                return e.data();
            }
        }
    }
    tmp = e;
    return tmp.data();
}

inline std::size_t product(const std::vector<std::size_t>& s, std::size_t from)
{
    std::size_t p = 1;
    for (std::size_t k = from; k < s.size(); ++k) {
        p *= s[k];
    }
    return p;
}

/// The first row of node `k`'s block when `rows` rows are split over `nodes` nodes: floor(k * rows / nodes),
/// without overflow.
inline std::size_t block_start(std::size_t rows, std::size_t k, std::size_t nodes) noexcept
{
    return k * (rows / nodes) + (k * (rows % nodes)) / nodes;
}

} // namespace detail

/// Options of a topology.
struct topology_options {
    /// Splits each machine into this many emulated nodes: its ranks, in rank order, into that many
    /// groups of consecutive ranks, each with its own leader and its own copy, as if each group ran on
    /// its own machine (for tests and benchmarks of one-copy-per-node on a single machine). 0: the
    /// environment variable NDSHM_MPI_EMULATED_NODES decides (unset or empty: 1, the real machines).
    /// With mpiexec on several hosts, forward it (Open MPI: `-x NDSHM_MPI_EMULATED_NODES`).
    int emulated_nodes = 0;
    /// The largest single MPI message ndshm sends, in bytes (1 to INT_MAX): larger transfers are split
    /// into chunks of this size, as MPI counts are int. The default is 1 GiB.
    std::size_t max_message_bytes = std::size_t(1) << 30;
};

/// Which ranks of a communicator share a machine (a node): the node communicator
/// (MPI_Comm_split_type with MPI_COMM_TYPE_SHARED), each node's leader (its lowest rank), and the
/// leaders' communicator. Nodes are numbered 0 .. node_count()-1 in the order of their leaders' ranks,
/// so rank 0 is the leader of node 0.
///
/// Copies share the same communicators (ndshm's own duplicates, with MPI_ERRORS_RETURN), which are
/// freed when the last copy, and the last object made with it, goes; destroy them before
/// MPI_Finalize (after it, they are not freed).
class topology {
public:
    /// Collective over `comm`: duplicates it and splits it by node.
    /// @throws error if MPI is not initialised or already finalised, if `comm` is MPI_COMM_NULL, if the
    /// options or NDSHM_MPI_EMULATED_NODES are invalid or differ between ranks, or if an MPI call fails
    explicit topology(MPI_Comm comm = MPI_COMM_WORLD, const topology_options& opt = {})
    {
        const std::string op = "topology";
        int initialized = 0;
        int finalized = 0;
        detail::check(MPI_Initialized(&initialized), "MPI_Initialized", op, "");
        detail::check(MPI_Finalized(&finalized), "MPI_Finalized", op, "");
        if (!initialized || finalized) {
            detail::core::raise<error>(op, "", finalized ? "MPI is already finalised" : "MPI is not initialised",
                                       "make ndshm::mpi objects between MPI_Init and MPI_Finalize",
                                       make_error_code(errc::invalid_argument));
        }
        if (comm == MPI_COMM_NULL) {
            detail::core::raise<error>(op, "", "the communicator is MPI_COMM_NULL",
                                       "pass a communicator this rank belongs to, such as MPI_COMM_WORLD",
                                       make_error_code(errc::invalid_argument));
        }
        auto s = std::make_shared<detail::topology_state>();
        detail::check(MPI_Comm_dup(comm, &s->comm), "MPI_Comm_dup", op, "");
        detail::check(MPI_Comm_set_errhandler(s->comm, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler", op, "");
        detail::check(MPI_Comm_rank(s->comm, &s->rank), "MPI_Comm_rank", op, "");
        detail::check(MPI_Comm_size(s->comm, &s->size), "MPI_Comm_size", op, "");

        std::exception_ptr bad;
        try {
            s->emulated = detail::emulated_nodes_from(opt.emulated_nodes);
            if (opt.max_message_bytes == 0 || opt.max_message_bytes > static_cast<std::size_t>(INT_MAX)) {
                detail::core::raise<error>(op, "", "max_message_bytes is " + std::to_string(opt.max_message_bytes),
                                           "pass 1 to " + std::to_string(INT_MAX) + " bytes (MPI counts are int)",
                                           make_error_code(errc::invalid_argument));
            }
            s->max_message = opt.max_message_bytes;
        } catch (...) {
            bad = std::current_exception();
        }
        detail::agree(s->comm, s->rank, bad, op, "");
        detail::fingerprint fp;
        fp.add(static_cast<std::uint64_t>(s->emulated)).add(s->max_message);
        detail::check_same(s->comm, s->size, fp.value(),
                           std::to_string(s->emulated) + " emulated nodes per machine, messages of at most " +
                               std::to_string(s->max_message) + " bytes",
                           "the topology options (emulated_nodes or NDSHM_MPI_EMULATED_NODES, max_message_bytes)", op,
                           "");

        MPI_Comm machine = MPI_COMM_NULL;
        detail::check(MPI_Comm_split_type(s->comm, MPI_COMM_TYPE_SHARED, s->rank, MPI_INFO_NULL, &machine),
                      "MPI_Comm_split_type", op, "");
        if (s->emulated > 1) {
            int mrank = 0;
            int msize = 1;
            int rc = MPI_Comm_rank(machine, &mrank);
            rc = rc == MPI_SUCCESS ? MPI_Comm_size(machine, &msize) : rc;
            const long long color = static_cast<long long>(mrank) * s->emulated / msize;
            rc = rc == MPI_SUCCESS ? MPI_Comm_split(machine, static_cast<int>(color), s->rank, &s->node) : rc;
            (void)MPI_Comm_free(&machine);
            detail::check(rc, "MPI_Comm_split (emulated nodes)", op, "");
        } else {
            s->node = machine;
        }
        detail::check(MPI_Comm_set_errhandler(s->node, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler", op, "");
        detail::check(MPI_Comm_rank(s->node, &s->node_rank), "MPI_Comm_rank", op, "");
        detail::check(MPI_Comm_size(s->node, &s->node_size), "MPI_Comm_size", op, "");
        detail::check(MPI_Comm_split(s->comm, s->node_rank == 0 ? 0 : MPI_UNDEFINED, s->rank, &s->leaders),
                      "MPI_Comm_split (leaders)", op, "");
        int where[2] = {0, 0}; // node index, node count
        if (s->leaders != MPI_COMM_NULL) {
            detail::check(MPI_Comm_set_errhandler(s->leaders, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler", op, "");
            detail::check(MPI_Comm_rank(s->leaders, &where[0]), "MPI_Comm_rank", op, "");
            detail::check(MPI_Comm_size(s->leaders, &where[1]), "MPI_Comm_size", op, "");
        }
        detail::check(MPI_Bcast(where, 2, MPI_INT, 0, s->node), "MPI_Bcast", op, "");
        s->node_index = where[0];
        s->node_count = where[1];
        s->node_of.resize(static_cast<std::size_t>(s->size));
        detail::check(MPI_Allgather(&s->node_index, 1, MPI_INT, s->node_of.data(), 1, MPI_INT, s->comm),
                      "MPI_Allgather", op, "");
        s->leader_of.assign(static_cast<std::size_t>(s->node_count), -1);
        for (int r = 0; r < s->size; ++r) {
            int& l = s->leader_of[static_cast<std::size_t>(s->node_of[static_cast<std::size_t>(r)])];
            if (l < 0) {
                l = r;
            }
        }
        m_state = std::move(s);
    }

    /// ndshm's duplicate of the communicator (MPI_ERRORS_RETURN); usable for the program's own calls.
    MPI_Comm comm() const noexcept { return m_state->comm; }
    /// The ranks of this node (an emulated node's ranks when nodes are emulated).
    MPI_Comm node_comm() const noexcept { return m_state->node; }
    /// The node leaders, one per node, ordered by node; MPI_COMM_NULL on ranks that are not leaders.
    MPI_Comm leaders_comm() const noexcept { return m_state->leaders; }
    /// This rank in comm().
    int rank() const noexcept { return m_state->rank; }
    /// Ranks in comm().
    int size() const noexcept { return m_state->size; }
    /// This rank's node: 0 .. node_count()-1.
    int node() const noexcept { return m_state->node_index; }
    /// Number of nodes.
    int node_count() const noexcept { return m_state->node_count; }
    /// This rank in node_comm() (0: the leader).
    int node_rank() const noexcept { return m_state->node_rank; }
    /// Ranks on this node.
    int node_size() const noexcept { return m_state->node_size; }
    /// True on each node's leader (its lowest rank), which creates the node's segments.
    bool is_leader() const noexcept { return m_state->node_rank == 0; }
    /// Emulated nodes per machine (1: the real machines).
    int emulated_nodes() const noexcept { return m_state->emulated; }
    /// The largest single MPI message ndshm sends, in bytes.
    std::size_t max_message_bytes() const noexcept { return m_state->max_message; }

    /// The node of rank `r` of comm().
    /// @throws error if `r` is not a rank of comm()
    int node_of(int r) const
    {
        m_state->check_root(r, "topology node_of", "", "rank");
        return m_state->node_of[static_cast<std::size_t>(r)];
    }
    /// The rank (in comm()) of node `n`'s leader.
    /// @throws error if `n` is not a node
    int leader_of(int n) const
    {
        if (n < 0 || n >= m_state->node_count) {
            detail::core::raise<error>("topology leader_of", "", "there is no node " + std::to_string(n),
                                       "pass a node from 0 to " + std::to_string(m_state->node_count - 1),
                                       make_error_code(errc::invalid_argument));
        }
        return m_state->leader_of[static_cast<std::size_t>(n)];
    }

private:
    template <class, std::size_t>
    friend class basic_node_array;
    friend class node_object;
    friend class node_store;

    explicit topology(std::shared_ptr<const detail::topology_state> s) noexcept : m_state(std::move(s)) {}

    std::shared_ptr<const detail::topology_state> m_state;
};

/// An array with one copy per node: each node's leader creates an ndshm segment and the node's other
/// ranks attach it, so every rank holds an ordinary `shared_ndarray<T>` (`node_array<T>`) or
/// `shared_tensor<T, N>` (`node_tensor<T, N>`) on its node's copy. Writes by any rank are seen by the
/// ranks of the same node; `bcast`, `scatter` and `gather` move data between nodes.
///
/// Move-only. The collective members (marked so) must be called by every rank of the topology.
/// Reading and writing the array needs no MPI call; synchronise the ranks of a node around writes
/// as for any shared memory (an MPI_Barrier on node_comm(), for example). The collectives themselves
/// synchronise: ranks must have finished writing before they enter, and see the result when they leave.
template <class T, std::size_t N>
class basic_node_array {
    static_assert(!std::is_const_v<T>, "ndshm::mpi::node_array<T>: T is the writable element type; convert "
                                       "array() to a shared_ndarray<const T> for a read-only handle");

public:
    /// The handle each rank holds: shared_ndarray<T>, or shared_tensor<T, N> for a fixed rank.
    using handle_type = std::conditional_t<N == dynamic_rank, shared_ndarray<T>, shared_tensor<T, N>>;
    using shape_type = typename handle_type::shape_type;
    using value_type = T;
    using view_type = typename handle_type::view_type;
    using const_view_type = typename handle_type::const_view_type;

    /// An empty node array (no topology, no segment).
    basic_node_array() = default;
    basic_node_array(basic_node_array&& o) noexcept
        : m_topo(std::move(o.m_topo)), m_array(std::move(o.m_array)), m_row_offset(std::exchange(o.m_row_offset, 0))
    {
    }
    basic_node_array& operator=(basic_node_array&& o) noexcept
    {
        if (this != &o) {
            m_topo = std::move(o.m_topo);
            m_array = std::move(o.m_array);
            m_row_offset = std::exchange(o.m_row_offset, 0);
        }
        return *this;
    }
    basic_node_array(const basic_node_array&) = delete;
    basic_node_array& operator=(const basic_node_array&) = delete;
    ~basic_node_array() = default;

    /// Collective: a zero-filled array of `shape` on every node. Every rank passes the same shape
    /// (checked). options::name, if set, names node k's segment `<name>_<k>`.
    /// @throws error if the ranks pass different shapes; the errors of shared_ndarray::create and
    /// attach, on every rank, if they happen on any
    static basic_node_array create(const topology& topo, const shape_type& shape, const options& opt = {})
    {
        return create(topo, shape, order::c, opt);
    }

    /// Collective: as create(topo, shape, opt), in C or Fortran order.
    static basic_node_array create(const topology& topo, const shape_type& shape, order ord, const options& opt = {})
    {
        const std::string op = "node_array create";
        const auto& s = state_of(topo, op);
        detail::fingerprint fp;
        fp.add(static_cast<std::uint64_t>(dtype_of<T>)).add(std::uint64_t{ord == order::fortran}).add_shape(shape);
        detail::check_same(s.comm, s.size, fp.value(),
                           detail::describe_array(dtype_of<T>, ord == order::fortran, shape),
                           "the node array's dtype, order and shape", op, "");
        return make(topo.m_state, shape, ord, opt, op);
    }

    /// Collective: every node gets a copy of `src`, an xtensor expression evaluated on rank `root`
    /// only (the other ranks may pass any expression, an empty xt::xarray for example). C order.
    /// @throws as create; error if `root` is not a rank, or the expression's rank is not N
    template <class E>
    static basic_node_array from_root(const topology& topo, const xt::xexpression<E>& src, int root = 0,
                                      const options& opt = {})
    {
        return from_root_impl(topo, root, opt, [&src](std::vector<std::size_t>& shape) {
            shape.assign(src.derived_cast().shape().begin(), src.derived_cast().shape().end());
            return [&src](handle_type& a) { detail::core::assign_unaliased(a.view(), src.derived_cast()); };
        });
    }

    /// Collective: every node gets a copy of the `prod(shape)` elements at `data` in C order, read on
    /// rank `root` only (`data` and `shape` are ignored on the other ranks).
    /// @throws as create; error if `root` is not a rank
    static basic_node_array from_root(const topology& topo, const T* data, const shape_type& shape, int root = 0,
                                      const options& opt = {})
    {
        return from_root_impl(topo, root, opt, [&](std::vector<std::size_t>& out) {
            out.assign(shape.begin(), shape.end());
            return [data](handle_type& a) {
                if (a.nbytes() != 0) {
                    std::memcpy(a.data(), data, a.nbytes());
                }
            };
        });
    }

    /// Collective: splits `src` (an xtensor expression evaluated on rank `root` only) along axis 0
    /// into one block of consecutive rows per node: node k gets rows [k*R/K, (k+1)*R/K) of R rows
    /// over K nodes (row_offset() says where its block starts). The root sends each block to its
    /// node's leader; nothing is copied inside a node.
    /// @throws error if `root` is not a rank, if `src` has no axis 0 (or not N dimensions); as create
    template <class E>
    static basic_node_array scatter(const topology& topo, const xt::xexpression<E>& src, int root = 0,
                                    const options& opt = {})
    {
        const std::string op = "node_array scatter";
        const auto& s = state_of(topo, op);
        check_root_agreed(s, root, op, "");
        // The root evaluates the source and says its shape (or that it failed) to every rank.
        xt::xarray<T> tmp;
        const T* data = nullptr;
        std::vector<std::size_t> shape;
        std::exception_ptr bad;
        if (s.rank == root) {
            try {
                const auto& e = src.derived_cast();
                shape.assign(e.shape().begin(), e.shape().end());
                check_source_shape(shape, true, op);
                data = detail::c_order_data<T>(e, tmp);
            } catch (...) {
                bad = std::current_exception();
            }
        }
        detail::agree(s.comm, s.rank, bad, op, "");
        bcast_shape(s, shape, root, op);

        const auto nodes = static_cast<std::size_t>(s.node_count);
        const std::size_t rows = shape[0];
        const std::size_t row_elems = detail::product(shape, 1);
        const auto k = static_cast<std::size_t>(s.node_index);
        std::vector<std::size_t> block = shape;
        block[0] = detail::block_start(rows, k + 1, nodes) - detail::block_start(rows, k, nodes);
        basic_node_array a = make(topo.m_state, to_shape(block), order::c, opt, op);
        a.m_row_offset = detail::block_start(rows, k, nodes);
        const std::size_t chunk = s.max_message;
        if (s.rank == root) {
            for (std::size_t n = 0; n < nodes; ++n) {
                const std::size_t first = detail::block_start(rows, n, nodes);
                const std::size_t bytes = (detail::block_start(rows, n + 1, nodes) - first) * row_elems * sizeof(T);
                const T* from = data + first * row_elems;
                if (n == k) {
                    if (bytes != 0) {
                        std::memcpy(a.m_array.data(), from, bytes);
                    }
                } else {
                    detail::send_bytes(from, bytes, s.leader_of[n], s.comm, chunk, op, a.name());
                }
            }
        } else if (s.leader() && s.node_index != s.node_of[static_cast<std::size_t>(root)]) {
            detail::recv_bytes(a.m_array.data(), a.m_array.nbytes(), root, s.comm, chunk, op, a.name());
        }
        detail::barrier(s.node, op, a.name());
        return a;
    }

    /// Collective: copies rank `root`'s node copy into every other node's copy (leader to leader
    /// with MPI_Bcast, in messages of at most topology::max_message_bytes; then nothing to copy
    /// inside a node). Every rank passes the same root (checked).
    /// @throws error if `root` is not a rank, if the ranks disagree, or if the array is empty
    void bcast(int root = 0)
    {
        const std::string op = "node_array bcast";
        const auto& s = state(op);
        detail::fingerprint fp;
        fp.add(static_cast<std::uint64_t>(static_cast<std::int64_t>(root)))
            .add(static_cast<std::uint64_t>(dtype_of<T>))
            .add(std::uint64_t{m_array.fortran_order()})
            .add_shape(m_array.shape());
        detail::check_same(s.comm, s.size, fp.value(),
                           "root " + std::to_string(root) + " and " +
                               detail::describe_array(dtype_of<T>, m_array.fortran_order(), m_array.shape()),
                           "the root and the array", op, name());
        s.check_root(root, op, name());
        // The allreduce above returned only when every rank had entered: the root's writes are done
        // and nobody reads the copies that are about to be overwritten.
        distribute(s, s.node_of[static_cast<std::size_t>(root)], op);
    }

    /// Collective: stacks the node copies along axis 0, in node order, into a new array on rank
    /// `root`, which owns it (an empty handle on the other ranks). Every node's leader sends its copy;
    /// the root's own node's copy is copied locally. The row shape (shape without axis 0), dtype and
    /// root must agree on every rank (checked); C order only.
    /// @throws error if they do not, if the array has no axis 0 or is Fortran-ordered; as create
    handle_type gather(int root = 0, const options& opt = {}) const
    {
        const std::string op = "node_array gather";
        const auto& s = state(op);
        const std::vector<std::size_t> shape(m_array.shape().begin(), m_array.shape().end());
        std::vector<std::size_t> row_shape;
        if (!shape.empty()) {
            row_shape.assign(shape.begin() + 1, shape.end());
        }
        const bool fortran = m_array.fortran_order() && shape.size() > 1;
        detail::fingerprint fp;
        fp.add(static_cast<std::uint64_t>(static_cast<std::int64_t>(root)))
            .add(static_cast<std::uint64_t>(dtype_of<T>))
            .add(std::uint64_t{fortran})
            .add(shape.size())
            .add_shape(row_shape);
        detail::check_same(s.comm, s.size, fp.value(),
                           "root " + std::to_string(root) + " and " + std::string(dtype_name(dtype_of<T>)) +
                               (fortran ? " Fortran-order" : "") + " rows of shape " +
                               detail::core::shape_string(row_shape),
                           "the root and the row shape", op, name());
        s.check_root(root, op, name());
        check_source_shape(shape, !fortran, op);

        unsigned long long rows = shape[0];
        std::vector<unsigned long long> all(s.rank == root ? static_cast<std::size_t>(s.size) : 0);
        detail::check(MPI_Gather(&rows, 1, MPI_UNSIGNED_LONG_LONG, all.data(), 1, MPI_UNSIGNED_LONG_LONG, root, s.comm),
                      "MPI_Gather", op, name());
        handle_type out;
        std::exception_ptr bad;
        std::vector<std::size_t> first(static_cast<std::size_t>(s.node_count) + 1, 0);
        if (s.rank == root) {
            try {
                for (int n = 0; n < s.node_count; ++n) {
                    const auto i = static_cast<std::size_t>(n);
                    first[i + 1] = first[i] + static_cast<std::size_t>(all[static_cast<std::size_t>(s.leader_of[i])]);
                }
                std::vector<std::size_t> whole = shape;
                whole[0] = first.back();
                out = handle_type::create(to_shape(whole), opt);
            } catch (...) {
                bad = std::current_exception();
            }
        }
        detail::agree(s.comm, s.rank, bad, op, name());
        const std::size_t row_bytes = detail::product(shape, 1) * sizeof(T);
        const std::size_t chunk = s.max_message;
        const auto root_node = s.node_of[static_cast<std::size_t>(root)];
        if (s.rank == root) {
            for (int n = 0; n < s.node_count; ++n) {
                const auto i = static_cast<std::size_t>(n);
                auto* to = reinterpret_cast<unsigned char*>(out.data()) + first[i] * row_bytes;
                const std::size_t bytes = (first[i + 1] - first[i]) * row_bytes;
                if (n == s.node_index) {
                    if (bytes != 0) {
                        std::memcpy(to, m_array.data(), bytes);
                    }
                } else {
                    detail::recv_bytes(to, bytes, s.leader_of[i], s.comm, chunk, op, name());
                }
            }
        } else if (s.leader() && s.node_index != root_node) {
            detail::send_bytes(m_array.data(), m_array.nbytes(), root, s.comm, chunk, op, name());
        }
        // Nobody writes the node copies again before their leaders have sent them.
        detail::barrier(s.node, op, name());
        return out;
    }

    /// Collective: the end of the node array. Every rank of a node drops its handle, then the node's
    /// leader unlinks the segment (unless it was persisted) and drops its own, so the memory goes
    /// when the last mapping does (copies of array() keep theirs). Afterwards the name is gone and
    /// this object is empty. Does nothing on an empty node array.
    /// @throws error if the ranks of a node release different arrays; the leader if unlink fails
    void release()
    {
        if (!m_topo) {
            return;
        }
        const auto topo = std::move(m_topo);
        m_row_offset = 0;
        detail::release_node_segment(
            *topo, detail::core::array_access::mapping_of(m_array), [this] { m_array.reset(); }, "node_array release");
    }

    /// This rank's handle on its node's copy: an ordinary shared_ndarray<T> (or shared_tensor<T, N>).
    handle_type& array() noexcept { return m_array; }
    const handle_type& array() const noexcept { return m_array; }
    /// The xtensor view of the node's copy (no copy).
    view_type view() { return m_array.view(); }
    const_view_type view() const { return m_array.view(); }
    /// Element access on the node's copy, as the handle's (unchecked operator(), checked at()).
    template <class... Idx>
    T& operator()(Idx... idx) noexcept(noexcept(std::declval<handle_type&>()(idx...)))
    {
        return m_array(idx...);
    }
    template <class... Idx>
    const T& operator()(Idx... idx) const noexcept(noexcept(std::declval<const handle_type&>()(idx...)))
    {
        return m_array(idx...);
    }
    template <class... Idx>
    T& at(Idx... idx)
    {
        return m_array.at(idx...);
    }
    template <class... Idx>
    const T& at(Idx... idx) const
    {
        return m_array.at(idx...);
    }
    /// This node's segment name (each node has its own).
    const std::string& name() const noexcept { return m_array.name(); }
    const shape_type& shape() const noexcept { return m_array.shape(); }
    std::size_t size() const noexcept { return m_array.size(); }
    std::size_t nbytes() const noexcept { return m_array.nbytes(); }
    T* data() noexcept { return m_array.data(); }
    const T* data() const noexcept { return m_array.data(); }
    /// True for a default-constructed, moved-from or released node array.
    bool empty() const noexcept { return !m_topo; }
    /// For a block made by scatter: the row of the whole array at which this node's block starts (0
    /// otherwise).
    std::size_t row_offset() const noexcept { return m_row_offset; }
    /// The topology this node array was made with.
    /// @throws error for an empty node array
    topology topo() const { return topology(state_ptr("node_array topo")); }

private:
    static const detail::topology_state& state_of(const topology& topo, const std::string& op)
    {
        if (!topo.m_state) {
            detail::core::raise<error>(op, "", "the topology is empty (moved from)", "pass a constructed topology",
                                       make_error_code(errc::invalid_argument));
        }
        return *topo.m_state;
    }
    const std::shared_ptr<const detail::topology_state>& state_ptr(const std::string& op) const
    {
        if (!m_topo) {
            detail::core::raise<error>(op, "", "the node array is empty (default-constructed, moved from or released)",
                                       "use a node array made by create, from_root or scatter",
                                       make_error_code(errc::invalid_argument));
        }
        return m_topo;
    }
    const detail::topology_state& state(const std::string& op) const { return *state_ptr(op); }

    static shape_type to_shape(const std::vector<std::size_t>& v)
    {
        if constexpr (N == dynamic_rank) {
            return v;
        } else {
            shape_type r{};
            std::copy(v.begin(), v.end(), r.begin());
            return r;
        }
    }

    /// Throws unless `shape` has an axis 0 (and N dimensions for a fixed rank) and is in C order.
    static void check_source_shape(const std::vector<std::size_t>& shape, bool c_order, const std::string& op)
    {
        if (shape.empty()) {
            detail::core::raise<error>(op, "", "the array has no dimensions (a 0-d array has no rows)",
                                       "pass an array of at least one dimension",
                                       make_error_code(errc::invalid_argument));
        }
        if (N != dynamic_rank && shape.size() != N) {
            detail::core::raise<error>(
                op, "",
                "the array has " + std::to_string(shape.size()) + " dimensions, the node array " + std::to_string(N),
                "use a node_tensor of the array's rank, or node_array", make_error_code(errc::rank_mismatch));
        }
        if (shape.size() > npy_max_dims) {
            detail::core::raise<error>(op, "", std::to_string(shape.size()) + " dimensions", "use at most 64",
                                       make_error_code(errc::invalid_argument));
        }
        if (!c_order) {
            detail::core::raise<error>(op, "", "the array is in Fortran order: its rows are not contiguous",
                                       "use a C-order array", make_error_code(errc::invalid_argument));
        }
    }
    static constexpr std::size_t npy_max_dims = 64;

    /// Checks that every rank passed the same root, and that it is a rank; throws on all if not.
    static void check_root_agreed(const detail::topology_state& s, int root, const std::string& op,
                                  const std::string& name)
    {
        detail::fingerprint fp;
        fp.add(static_cast<std::uint64_t>(static_cast<std::int64_t>(root)))
            .add(static_cast<std::uint64_t>(dtype_of<T>))
            .add(static_cast<std::uint64_t>(N));
        const std::string rank = N == dynamic_rank ? std::string("any rank") : "rank " + std::to_string(N);
        detail::check_same(s.comm, s.size, fp.value(),
                           "root " + std::to_string(root) + ", dtype " + dtype_name(dtype_of<T>) + ", " + rank,
                           "the root, dtype and node array rank", op, name);
        s.check_root(root, op, name);
    }

    /// Broadcasts the root's shape to every rank of comm.
    static void bcast_shape(const detail::topology_state& s, std::vector<std::size_t>& shape, int root,
                            const std::string& op)
    {
        unsigned long long head[1 + npy_max_dims] = {};
        head[0] = shape.size();
        for (std::size_t k = 0; k < shape.size() && k < npy_max_dims; ++k) {
            head[1 + k] = shape[k];
        }
        detail::check(MPI_Bcast(head, static_cast<int>(1 + npy_max_dims), MPI_UNSIGNED_LONG_LONG, root, s.comm),
                      "MPI_Bcast", op, "");
        shape.assign(head + 1, head + 1 + std::min<unsigned long long>(head[0], npy_max_dims));
    }

    /// Collective without argument checks: each node's leader creates the array, the others attach it.
    static basic_node_array make(const std::shared_ptr<const detail::topology_state>& topo, const shape_type& shape,
                                 order ord, const options& opt, const std::string& op)
    {
        const auto& s = *topo;
        basic_node_array a;
        a.m_topo = topo;
        std::exception_ptr bad;
        detail::name_message msg;
        if (s.leader()) {
            try {
                a.m_array = handle_type::create(shape, ord, detail::node_options(opt, s.node_index));
                msg.set(a.m_array.name());
            } catch (...) {
                bad = std::current_exception();
            }
        }
        msg.bcast(0, s.node, op);
        if (!s.leader() && msg.ok()) {
            try {
                a.m_array = handle_type::attach(msg.name(), detail::attach_options(opt));
            } catch (...) {
                bad = std::current_exception();
            }
        }
        // Also makes sure that every rank has attached before any leader could unlink.
        detail::agree(s.comm, s.rank, bad, op, a.name());
        return a;
    }

    /// from_root: `prepare(shape)` runs on the root only; it sets the shape and returns what writes
    /// the data into the root's node copy.
    template <class Prepare>
    static basic_node_array from_root_impl(const topology& topo, int root, const options& opt, Prepare&& prepare)
    {
        const std::string op = "node_array from_root";
        const auto& s = state_of(topo, op);
        check_root_agreed(s, root, op, "");
        std::vector<std::size_t> shape;
        std::exception_ptr bad;
        using writer_type = decltype(prepare(shape));
        std::unique_ptr<writer_type> write;
        if (s.rank == root) {
            try {
                write = std::make_unique<writer_type>(prepare(shape));
                if (N != dynamic_rank && shape.size() != N) {
                    detail::core::raise<error>(op, "",
                                               "the source has " + std::to_string(shape.size()) +
                                                   " dimensions, the node array " + std::to_string(N),
                                               "use a node_tensor of the source's rank, or node_array",
                                               make_error_code(errc::rank_mismatch));
                }
                if (shape.size() > npy_max_dims) {
                    detail::core::raise<error>(op, "", std::to_string(shape.size()) + " dimensions", "use at most 64",
                                               make_error_code(errc::invalid_argument));
                }
            } catch (...) {
                bad = std::current_exception();
            }
        }
        detail::agree(s.comm, s.rank, bad, op, "");
        bcast_shape(s, shape, root, op);
        basic_node_array a = make(topo.m_state, to_shape(shape), order::c, opt, op);
        if (s.rank == root) {
            try {
                (*write)(a.m_array);
            } catch (...) {
                bad = std::current_exception();
            }
        }
        // Every rank waits for the root's copy into its node's segment (and learns if it failed).
        detail::agree(s.comm, s.rank, bad, op, a.name());
        a.distribute(s, s.node_of[static_cast<std::size_t>(root)], op);
        return a;
    }

    /// The leaders copy node `from`'s copy into theirs; then every rank of a node sees it.
    void distribute(const detail::topology_state& s, int from, const std::string& op)
    {
        std::atomic_thread_fence(std::memory_order_seq_cst);
        if (s.leader() && s.node_count > 1) {
            detail::bcast_bytes(m_array.data(), m_array.nbytes(), from, s.leaders, s.max_message, op, name());
        }
        detail::barrier(s.node, op, name());
    }

    std::shared_ptr<const detail::topology_state> m_topo;
    handle_type m_array;
    std::size_t m_row_offset = 0;
};

/// An n-d array of any rank with one copy per node (see basic_node_array).
template <class T>
using node_array = basic_node_array<T, dynamic_rank>;

/// An array of rank N with one copy per node (see basic_node_array): its handle is a shared_tensor<T, N>.
template <class T, std::size_t N>
using node_tensor = basic_node_array<T, N>;

/// A composite object (see ndshm/object.hpp) with one copy per node: one segment per node, which
/// every rank of the node loads zero-copy (shared_ndarray members are views into it).
///
///     auto obj = ndshm::mpi::node_object::share(topo, [&] { return read_model(path); });
///     model m = obj.load<model>();      // on every rank; arrays are the node's copy
///
/// Move-only; the static factories and release() are collective.
class node_object {
public:
    /// An empty node object.
    node_object() = default;
    node_object(node_object&&) noexcept = default;
    node_object& operator=(node_object&&) noexcept = default;
    node_object(const node_object&) = delete;
    node_object& operator=(const node_object&) = delete;
    ~node_object() = default;

    /// Collective: each node's leader calls `make()` and shares the object it returns once for its
    /// node (`make` runs on leaders only, once per node); the node's other ranks map that segment.
    /// options::name, if set, names node k's segment `<name>_<k>`.
    /// @throws what `make` or ndshm::share throws on a leader, on every rank
    template <class F>
    static node_object share(const topology& topo, F&& make, const options& opt = {})
    {
        const std::string op = "node_object share";
        const auto& s = state_of(topo, op);
        node_object o;
        o.m_topo = topo.m_state;
        std::exception_ptr bad;
        detail::name_message msg;
        if (s.leader()) {
            try {
                o.m_object = ndshm::share(make(), detail::node_options(opt, s.node_index));
                msg.set(o.m_object.name());
            } catch (...) {
                bad = std::current_exception();
            }
        }
        msg.bcast(0, s.node, op);
        if (!s.leader() && msg.ok()) {
            try {
                o.m_object = attach(msg.name(), opt, op);
            } catch (...) {
                bad = std::current_exception();
            }
        }
        detail::agree(s.comm, s.rank, bad, op, o.name());
        return o;
    }

    /// Collective: rank `root` shares `obj` (read on the root only) for its node, and the leaders of
    /// the other nodes receive a copy of that segment's bytes (MPI_Bcast between leaders) into a
    /// segment of their own; every rank then maps its node's copy. On the root's node the root owns
    /// the segment.
    /// @throws what ndshm::share throws on the root, on every rank; error if `root` is not a rank
    template <class T>
    static node_object from_root(const topology& topo, const T& obj, int root = 0, const options& opt = {})
    {
        const std::string op = "node_object from_root";
        const auto& s = state_of(topo, op);
        detail::fingerprint fp;
        fp.add(static_cast<std::uint64_t>(static_cast<std::int64_t>(root)));
        detail::check_same(s.comm, s.size, fp.value(), "root " + std::to_string(root), "the root", op, "");
        s.check_root(root, op, "");
        const int root_node = s.node_of[static_cast<std::size_t>(root)];
        node_object o;
        o.m_topo = topo.m_state;
        std::exception_ptr bad;
        // size, trailer offset, data offset, data bytes, array count of the root's segment
        unsigned long long meta[5] = {};
        detail::name_message msg;
        if (s.rank == root) {
            try {
                o.m_object = ndshm::share(obj, detail::node_options(opt, root_node));
                const auto& m = *detail::core::object_access::mapping_of(o.m_object);
                const detail::core::npy_info info = detail::core::parse_npy(m.base(), m.size(), m.name());
                const detail::core::trailer* t = detail::core::find_trailer(m, info, op);
                meta[0] = m.size();
                meta[1] = detail::core::trailer_offset_in(info, m.size());
                meta[2] = t->data_offset;
                meta[3] = t->data_bytes;
                meta[4] = o.m_object.array_count();
                msg.set(o.m_object.name());
            } catch (...) {
                bad = std::current_exception();
            }
        }
        detail::agree(s.comm, s.rank, bad, op, "");
        detail::check(MPI_Bcast(meta, 5, MPI_UNSIGNED_LONG_LONG, root, s.comm), "MPI_Bcast", op, "");
        // The root's node: its ranks attach the root's segment.
        if (s.node_index == root_node) {
            msg.bcast(s.node_rank_of(root), s.node, op);
            if (s.rank != root) {
                try {
                    o.m_object = attach(msg.name(), opt, op);
                } catch (...) {
                    bad = std::current_exception();
                }
            }
        }
        detail::agree(s.comm, s.rank, bad, op, o.name());
        // The other nodes: the leaders copy the root's bytes (all but the trailer, with the magic
        // written last, as any creator does), then their ranks attach.
        if (s.node_count > 1) {
            std::shared_ptr<detail::core::mapping> m;
            if (s.leader() && s.node_index != root_node) {
                try {
                    m = detail::core::create_segment(detail::node_options(opt, s.node_index),
                                                     static_cast<std::size_t>(meta[0]), op);
                } catch (...) {
                    bad = std::current_exception();
                }
            }
            detail::agree(s.comm, s.rank, bad, op, "");
            if (s.leader()) {
                unsigned char* base = s.node_index == root_node
                                          ? detail::core::object_access::mapping_of(o.m_object)->base()
                                          : m->base();
                const std::size_t magic = sizeof detail::core::npy_magic;
                detail::bcast_bytes(base + magic, static_cast<std::size_t>(meta[1]) - magic, root_node, s.leaders,
                                    s.max_message, op, o.name());
                if (m) {
                    detail::core::write_trailer(*m, static_cast<std::size_t>(meta[1]), detail::core::kind_object,
                                                static_cast<std::size_t>(meta[2]), static_cast<std::size_t>(meta[3]));
                    m->publish();
                    o.m_object = detail::core::object_access::make(std::move(m), static_cast<std::size_t>(meta[4]));
                }
            }
            if (s.node_index != root_node) {
                msg = detail::name_message();
                if (s.leader()) {
                    msg.set(o.m_object.name());
                }
                msg.bcast(0, s.node, op);
                if (!s.leader()) {
                    try {
                        o.m_object = attach(msg.name(), opt, op);
                    } catch (...) {
                        bad = std::current_exception();
                    }
                }
            }
            detail::agree(s.comm, s.rank, bad, op, o.name());
        }
        return o;
    }

    /// Rebuilds the object in this rank from the node's copy: shared_ndarray members are zero-copy
    /// views into it (they keep the mapping alive), the rest is decoded from the blob. Not collective.
    /// @throws error for an empty node object; what ndshm::load throws
    template <class T>
    T load() const
    {
        if (m_object.empty()) {
            detail::core::raise<error>("node_object load", "", "the node object is empty",
                                       "use a node object made by share or from_root",
                                       make_error_code(errc::invalid_argument));
        }
        return ndshm::load<T>(m_object);
    }

    /// This node's segment name.
    const std::string& name() const noexcept { return m_object.name(); }
    /// Number of arrays in the object.
    std::size_t array_count() const noexcept { return m_object.array_count(); }
    /// True for a default-constructed, moved-from or released node object.
    bool empty() const noexcept { return !m_topo; }

    /// Collective: every rank of a node drops its handle, then the segment's owner unlinks it (unless
    /// persisted). Objects loaded from it keep their mappings. Does nothing on an empty node object.
    /// @throws error if the ranks of a node release different objects; the owner if unlink fails
    void release()
    {
        if (!m_topo) {
            return;
        }
        const auto topo = std::move(m_topo);
        detail::release_node_segment(
            *topo, detail::core::object_access::mapping_of(m_object), [this] { m_object.reset(); },
            "node_object release");
    }

private:
    static const detail::topology_state& state_of(const topology& topo, const std::string& op)
    {
        if (!topo.m_state) {
            detail::core::raise<error>(op, "", "the topology is empty (moved from)", "pass a constructed topology",
                                       make_error_code(errc::invalid_argument));
        }
        return *topo.m_state;
    }

    /// A handle (not owning) on the object segment `name` of this node.
    static shared_object attach(const std::string& name, const options& opt, const std::string& op)
    {
        detail::core::npy_info info;
        std::uint32_t kind = 0;
        auto m = detail::core::open_npy_segment(detail::attach_options(opt), name, op, info, kind);
        const detail::core::parsed_object parsed = detail::core::parse_object_image(*m, info, kind, op, name);
        return detail::core::object_access::make(std::move(m), parsed.entries.size());
    }

    std::shared_ptr<const detail::topology_state> m_topo;
    shared_object m_object;
};

/// A store (see ndshm/store.hpp) opened by each node's leader: an array is loaded from disk once per
/// node (once per machine where emulated nodes share one) by the leader, and the node's other ranks
/// attach the leader's segment by name. The files must be readable by every leader (a shared file
/// system, or a copy per node).
///
///     ndshm::mpi::node_store st(topo, "/data/run42");
///     auto w = st.get<float>("weights");   // on every rank: shared_ndarray<const float>, one copy per node
///
/// Move-only; the constructor, get and close are collective.
class node_store {
public:
    /// Collective: each node's leader opens the store at `dir` (creating the directory if missing).
    /// @throws what ndshm::store's constructor throws on a leader, on every rank
    node_store(const topology& topo, const std::string& dir, const options& opt = {}) : m_opt(opt)
    {
        const std::string op = "node_store open";
        if (!topo.m_state) {
            detail::core::raise<error>(op, dir, "the topology is empty (moved from)", "pass a constructed topology",
                                       make_error_code(errc::invalid_argument));
        }
        m_topo = topo.m_state;
        const auto& s = *m_topo;
        std::exception_ptr bad;
        if (s.leader()) {
            try {
                m_store = std::make_unique<store>(dir, opt);
            } catch (...) {
                bad = std::current_exception();
            }
        }
        detail::agree(s.comm, s.rank, bad, op, dir);
    }
    node_store(node_store&&) noexcept = default;
    node_store& operator=(node_store&&) noexcept = default;
    node_store(const node_store&) = delete;
    node_store& operator=(const node_store&) = delete;
    /// Local: the leader's store unlinks what it loaded (see store::close); handles stay valid.
    ~node_store() = default;

    /// Collective: the array under `key` (rows `rows`), read-only, from the node's copy: the leader
    /// gets it from its store (loading it unless this machine already has it), the others attach.
    /// Every rank passes the same key, rows and T (checked).
    /// @throws what store::get throws on a leader (not_found for a missing key, ...), on every rank
    template <class T>
    shared_ndarray<const T> get(const std::string& key, row_range rows = {})
    {
        const std::string op = "node_store get";
        const auto& s = state(op);
        detail::fingerprint fp;
        fp.add(key).add(rows.begin).add(rows.end).add(static_cast<std::uint64_t>(dtype_of<std::remove_const_t<T>>));
        const std::string range = rows.end == row_range::all && rows.begin == 0
                                      ? std::string("all rows")
                                      : "rows [" + std::to_string(rows.begin) + ", " +
                                            (rows.end == row_range::all ? std::string("end")
                                                                        : std::to_string(rows.end)) +
                                            ")";
        detail::check_same(s.comm, s.size, fp.value(),
                           "key '" + key + "', " + range + ", " + dtype_name(dtype_of<std::remove_const_t<T>>),
                           "the key, rows and dtype", op, key);
        shared_ndarray<const T> a;
        std::exception_ptr bad;
        detail::name_message msg;
        if (s.leader()) {
            try {
                a = m_store->get<T>(key, rows);
                msg.set(a.name());
            } catch (...) {
                bad = std::current_exception();
            }
        }
        msg.bcast(0, s.node, op);
        if (!s.leader() && msg.ok()) {
            try {
                options o = detail::attach_options(m_opt);
                o.read_only = true;
                a = shared_ndarray<const T>::attach(msg.name(), o);
            } catch (...) {
                bad = std::current_exception();
            }
        }
        detail::agree(s.comm, s.rank, bad, op, key);
        return a;
    }

    /// What the leader's store did (zero on the other ranks): arrays it loaded from disk, and arrays
    /// it attached because another process of the machine had loaded them.
    store::counters stats() const { return m_store ? m_store->stats() : store::counters{}; }

    /// Collective: once every rank of a node has called it, the leader closes its store (unlinking
    /// what it loaded; handles given out stay valid). Idempotent.
    void close()
    {
        if (!m_topo) {
            return;
        }
        const auto topo = std::move(m_topo);
        detail::barrier(topo->node, "node_store close", "");
        if (m_store) {
            m_store->close();
            m_store.reset();
        }
        detail::barrier(topo->node, "node_store close", "");
    }

private:
    const detail::topology_state& state(const std::string& op) const
    {
        if (!m_topo) {
            detail::core::raise<error>(op, "", "the node store is closed or moved from", "open a node_store",
                                       make_error_code(errc::invalid_argument));
        }
        return *m_topo;
    }

    std::shared_ptr<const detail::topology_state> m_topo;
    std::unique_ptr<store> m_store; // leaders only
    options m_opt;
};

} // namespace ndshm::mpi

#endif
