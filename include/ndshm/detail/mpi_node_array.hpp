/// @file detail/mpi_node_array.hpp
/// What ndshm::mpi::basic_node_array does that does not depend on its element type and rank: the
/// checks of the ranks' arguments, the root's shape sent to every rank, the split of rows into one
/// block per node, and the moves of bytes between the node copies (bcast, scatter, gather).
#ifndef NDSHM_DETAIL_MPI_NODE_ARRAY_HPP
#define NDSHM_DETAIL_MPI_NODE_ARRAY_HPP

#include <mpi.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "../dtype.hpp"
#include "../error.hpp"
#include "array_handle.hpp"
#include "array_view.hpp"
#include "mpi_agree.hpp"
#include "mpi_calls.hpp"
#include "mpi_topology.hpp"
#include "xtensor_compat.hpp"

namespace ndshm::mpi::detail {

/// The most dimensions an array that travels between ranks may have (as many as NumPy allows).
inline constexpr std::size_t max_dims = 64;

/// "float64 C-order (4, 5)": what a rank passed, for messages.
template <class S>
std::string describe_array(ndshm::dtype t, bool fortran, const S& shape)
{
    return std::string(dtype_name(t)) + (fortran ? " Fortran-order " : " C-order ") + core::shape_string(shape);
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

/// Throws unless `dims` dimensions fit a node array of rank `rank` (any for dynamic_rank) and travel;
/// `what` is the array the dimensions are of ("array", "source").
inline void check_dims(std::size_t dims, std::size_t rank, const std::string& what, const std::string& op)
{
    if (rank != dynamic_rank && dims != rank) {
        core::raise<error>(
            op, "",
            "the " + what + " has " + std::to_string(dims) + " dimensions, the node array " + std::to_string(rank),
            "use a node_tensor of the " + what + "'s rank, or node_array", make_error_code(errc::rank_mismatch));
    }
    if (dims > max_dims) {
        core::raise<error>(op, "", std::to_string(dims) + " dimensions", "use at most 64",
                           make_error_code(errc::invalid_argument));
    }
}

/// Throws unless `shape` has an axis 0 (and `rank` dimensions for a fixed rank) and is in C order.
inline void check_source_shape(const std::vector<std::size_t>& shape, bool c_order, std::size_t rank,
                               const std::string& op)
{
    if (shape.empty()) {
        core::raise<error>(op, "", "the array has no dimensions (a 0-d array has no rows)",
                           "pass an array of at least one dimension", make_error_code(errc::invalid_argument));
    }
    check_dims(shape.size(), rank, "array", op);
    if (!c_order) {
        core::raise<error>(op, "", "the array is in Fortran order: its rows are not contiguous", "use a C-order array",
                           make_error_code(errc::invalid_argument));
    }
}

/// Checks that every rank passed the same root (and node arrays of the same dtype and rank), and that
/// it is a rank; throws on all if not.
inline void check_root_agreed(const topology_state& s, int root, dtype t, std::size_t rank, const std::string& op,
                              const std::string& name)
{
    fingerprint fp;
    fp.add(static_cast<std::uint64_t>(static_cast<std::int64_t>(root)))
        .add(static_cast<std::uint64_t>(t))
        .add(static_cast<std::uint64_t>(rank));
    const std::string rank_text = rank == dynamic_rank ? std::string("any rank") : "rank " + std::to_string(rank);
    check_same(s.comm, s.size, fp.value(),
               "root " + std::to_string(root) + ", dtype " + dtype_name(t) + ", " + rank_text,
               "the root, dtype and node array rank", op, name);
    s.check_root(root, op, name);
}

/// Every rank learns whether the root failed (`bad`, as agree) and, if not, the root's `shape`.
inline void share_root_shape(const topology_state& s, const std::exception_ptr& bad, std::vector<std::size_t>& shape,
                             int root, const std::string& op)
{
    agree(s.comm, s.rank, bad, op, "");
    unsigned long long head[1 + max_dims] = {};
    head[0] = shape.size();
    for (std::size_t k = 0; k < shape.size() && k < max_dims; ++k) {
        head[1 + k] = shape[k];
    }
    check(MPI_Bcast(head, static_cast<int>(1 + max_dims), MPI_UNSIGNED_LONG_LONG, root, s.comm), "MPI_Bcast", op, "");
    shape.assign(head + 1, head + 1 + std::min<unsigned long long>(head[0], max_dims));
}

/// The leaders copy node `from`'s copy (`data`, `nbytes` on each node) into theirs; then every rank of
/// a node sees it.
inline void distribute(const topology_state& s, int from, void* data, std::size_t nbytes, const std::string& op,
                       const std::string& name)
{
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (s.leader() && s.node_count > 1) {
        bcast_bytes(data, nbytes, from, s.leaders, s.max_message, op, name);
    }
    barrier(s.node, op, name);
}

/// bcast: checks that every rank passed the same root and an array of the same dtype, order and shape.
inline void check_bcast(const topology_state& s, int root, dtype t, bool fortran, const std::vector<std::size_t>& shape,
                        const std::string& op, const std::string& name)
{
    fingerprint fp;
    fp.add(static_cast<std::uint64_t>(static_cast<std::int64_t>(root)))
        .add(static_cast<std::uint64_t>(t))
        .add(std::uint64_t{fortran})
        .add_shape(shape);
    check_same(s.comm, s.size, fp.value(), "root " + std::to_string(root) + " and " + describe_array(t, fortran, shape),
               "the root and the array", op, name);
    s.check_root(root, op, name);
}

/// scatter: the shape of this node's block of the whole array of `shape`, and the row it starts at.
inline std::pair<std::vector<std::size_t>, std::size_t> node_block(const topology_state& s,
                                                                   const std::vector<std::size_t>& shape)
{
    const auto nodes = static_cast<std::size_t>(s.node_count);
    const auto k = static_cast<std::size_t>(s.node_index);
    std::vector<std::size_t> block = shape;
    block[0] = block_start(shape[0], k + 1, nodes) - block_start(shape[0], k, nodes);
    return {block, block_start(shape[0], k, nodes)};
}

/// scatter: the root sends each node's block of the whole array (`data` of `shape`, elements of
/// `itemsize` bytes) to that node's leader, which receives it into its node's copy (`mine`, `nbytes`).
inline void scatter_blocks(const topology_state& s, int root, const void* data, const std::vector<std::size_t>& shape,
                           std::size_t itemsize, void* mine, std::size_t nbytes, const std::string& op,
                           const std::string& name)
{
    const auto nodes = static_cast<std::size_t>(s.node_count);
    const std::size_t rows = shape[0];
    const std::size_t row_bytes = product(shape, 1) * itemsize;
    const auto k = static_cast<std::size_t>(s.node_index);
    const std::size_t chunk = s.max_message;
    if (s.rank == root) {
        for (std::size_t n = 0; n < nodes; ++n) {
            const std::size_t first = block_start(rows, n, nodes);
            const std::size_t bytes = (block_start(rows, n + 1, nodes) - first) * row_bytes;
            const auto* from = static_cast<const unsigned char*>(data) + first * row_bytes;
            if (n == k) {
                if (bytes != 0) {
                    std::memcpy(mine, from, bytes);
                }
            } else {
                send_bytes(from, bytes, s.leader_of[n], s.comm, chunk, op, name);
            }
        }
    } else if (s.leader() && s.node_index != s.node_of[static_cast<std::size_t>(root)]) {
        recv_bytes(mine, nbytes, root, s.comm, chunk, op, name);
    }
    barrier(s.node, op, name);
}

/// gather: checks that every rank passed the same root and rows of the same dtype, order and shape,
/// and that the array (of `shape`) has rows in C order.
inline void check_gather(const topology_state& s, int root, dtype t, bool fortran, std::size_t rank,
                         const std::vector<std::size_t>& shape, const std::string& op, const std::string& name)
{
    std::vector<std::size_t> row_shape;
    if (!shape.empty()) {
        row_shape.assign(shape.begin() + 1, shape.end());
    }
    fingerprint fp;
    fp.add(static_cast<std::uint64_t>(static_cast<std::int64_t>(root)))
        .add(static_cast<std::uint64_t>(t))
        .add(std::uint64_t{fortran})
        .add(shape.size())
        .add_shape(row_shape);
    check_same(s.comm, s.size, fp.value(),
               "root " + std::to_string(root) + " and " + std::string(dtype_name(t)) +
                   (fortran ? " Fortran-order" : "") + " rows of shape " + core::shape_string(row_shape),
               "the root and the row shape", op, name);
    s.check_root(root, op, name);
    check_source_shape(shape, !fortran, rank, op);
}

/// gather: on the root, the first row of each node's copy in the stacked array, and the total rows
/// last (node_count + 1 values; zeros on the other ranks). Every rank passes its copy's rows.
inline std::vector<std::size_t> gather_offsets(const topology_state& s, int root, std::size_t rows,
                                               const std::string& op, const std::string& name)
{
    unsigned long long mine = rows;
    std::vector<unsigned long long> all(s.rank == root ? static_cast<std::size_t>(s.size) : 0);
    check(MPI_Gather(&mine, 1, MPI_UNSIGNED_LONG_LONG, all.data(), 1, MPI_UNSIGNED_LONG_LONG, root, s.comm),
          "MPI_Gather", op, name);
    std::vector<std::size_t> first(static_cast<std::size_t>(s.node_count) + 1, 0);
    if (s.rank == root) {
        for (int n = 0; n < s.node_count; ++n) {
            const auto i = static_cast<std::size_t>(n);
            first[i + 1] = first[i] + static_cast<std::size_t>(all[static_cast<std::size_t>(s.leader_of[i])]);
        }
    }
    return first;
}

/// gather: every node's leader sends its copy (`data`, `nbytes`) to the root, which stacks them at
/// `out` (rows of `row_bytes`, node n's from row first[n]); the root's own node's copy is copied locally.
inline void gather_blocks(const topology_state& s, int root, const std::vector<std::size_t>& first,
                          std::size_t row_bytes, void* out, const void* data, std::size_t nbytes, const std::string& op,
                          const std::string& name)
{
    const std::size_t chunk = s.max_message;
    const auto root_node = s.node_of[static_cast<std::size_t>(root)];
    if (s.rank == root) {
        for (int n = 0; n < s.node_count; ++n) {
            const auto i = static_cast<std::size_t>(n);
            auto* to = static_cast<unsigned char*>(out) + first[i] * row_bytes;
            const std::size_t bytes = (first[i + 1] - first[i]) * row_bytes;
            if (n == s.node_index) {
                if (bytes != 0) {
                    std::memcpy(to, data, bytes);
                }
            } else {
                recv_bytes(to, bytes, s.leader_of[i], s.comm, chunk, op, name);
            }
        }
    } else if (s.leader() && s.node_index != root_node) {
        send_bytes(data, nbytes, root, s.comm, chunk, op, name);
    }
    // Nobody writes the node copies again before their leaders have sent them.
    barrier(s.node, op, name);
}

} // namespace ndshm::mpi::detail

#endif
