/// @file mpi_array.hpp
/// `ndshm::mpi::node_array<T>` and `node_tensor<T, N>`: an n-d array with one copy per node, which
/// each node's leader creates and the node's other ranks attach; bcast, scatter and gather move data
/// between the nodes' copies. Part of ndshm/mpi.hpp (see there: collectives, errors, lifetime); link
/// `ndshm::mpi`.
#ifndef NDSHM_MPI_ARRAY_HPP
#define NDSHM_MPI_ARRAY_HPP

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "detail/array_handle.hpp"
#include "detail/mpi_node_array.hpp"
#include "detail/mpi_node_segment.hpp"
#include "detail/mpi_topology.hpp"
#include "detail/xtensor_compat.hpp"
#include "error.hpp"
#include "mpi_topology.hpp"
#include "options.hpp"
#include "shared_ndarray.hpp"
#include "shared_tensor.hpp"

namespace ndshm::mpi {

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
        const auto& s = detail::require_topology(topo.m_state, op, "");
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
        const auto& s = detail::require_topology(topo.m_state, op, "");
        detail::check_root_agreed(s, root, dtype_of<T>, N, op, "");
        // The root evaluates the source and says its shape (or that it failed) to every rank.
        xt::xarray<T> tmp;
        const T* data = nullptr;
        std::vector<std::size_t> shape;
        std::exception_ptr bad;
        if (s.rank == root) {
            try {
                const auto& e = src.derived_cast();
                shape.assign(e.shape().begin(), e.shape().end());
                detail::check_source_shape(shape, true, N, op);
                data = detail::c_order_data<T>(e, tmp);
            } catch (...) {
                bad = std::current_exception();
            }
        }
        detail::share_root_shape(s, bad, shape, root, op);
        const auto block = detail::node_block(s, shape);
        basic_node_array a = make(topo.m_state, to_shape(block.first), order::c, opt, op);
        a.m_row_offset = block.second;
        detail::scatter_blocks(s, root, data, shape, sizeof(T), a.m_array.data(), a.m_array.nbytes(), op, a.name());
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
        detail::check_bcast(s, root, dtype_of<T>, m_array.fortran_order(),
                            std::vector<std::size_t>(m_array.shape().begin(), m_array.shape().end()), op, name());
        // The allreduce above returned only when every rank had entered: the root's writes are done
        // and nobody reads the copies that are about to be overwritten.
        detail::distribute(s, s.node_of[static_cast<std::size_t>(root)], m_array.data(), m_array.nbytes(), op, name());
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
        const bool fortran = m_array.fortran_order() && shape.size() > 1;
        detail::check_gather(s, root, dtype_of<T>, fortran, N, shape, op, name());
        const std::vector<std::size_t> first = detail::gather_offsets(s, root, shape[0], op, name());
        handle_type out;
        std::exception_ptr bad;
        if (s.rank == root) {
            try {
                std::vector<std::size_t> whole = shape;
                whole[0] = first.back();
                out = handle_type::create(to_shape(whole), opt);
            } catch (...) {
                bad = std::current_exception();
            }
        }
        detail::agree(s.comm, s.rank, bad, op, name());
        detail::gather_blocks(s, root, first, detail::product(shape, 1) * sizeof(T), out.data(), m_array.data(),
                              m_array.nbytes(), op, name());
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

    /// Collective without argument checks: each node's leader creates the array, the others attach it.
    static basic_node_array make(const std::shared_ptr<const detail::topology_state>& topo, const shape_type& shape,
                                 order ord, const options& opt, const std::string& op)
    {
        const auto& s = *topo;
        basic_node_array a;
        a.m_topo = topo;
        const std::exception_ptr bad = detail::create_on_node(
            s, 0,
            [&] {
                a.m_array = handle_type::create(shape, ord, detail::node_options(opt, s.node_index));
                return a.m_array.name();
            },
            [&](const std::string& name) { a.m_array = handle_type::attach(name, detail::attach_options(opt)); }, op);
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
        const auto& s = detail::require_topology(topo.m_state, op, "");
        detail::check_root_agreed(s, root, dtype_of<T>, N, op, "");
        std::vector<std::size_t> shape;
        std::exception_ptr bad;
        using writer_type = decltype(prepare(shape));
        std::unique_ptr<writer_type> write;
        if (s.rank == root) {
            try {
                write = std::make_unique<writer_type>(prepare(shape));
                detail::check_dims(shape.size(), N, "source", op);
            } catch (...) {
                bad = std::current_exception();
            }
        }
        detail::share_root_shape(s, bad, shape, root, op);
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
        detail::distribute(s, s.node_of[static_cast<std::size_t>(root)], a.m_array.data(), a.m_array.nbytes(), op,
                           a.name());
        return a;
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

} // namespace ndshm::mpi

#endif
