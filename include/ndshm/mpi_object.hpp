/// @file mpi_object.hpp
/// `ndshm::mpi::node_object`: a composite object (see ndshm/object.hpp) with one copy per node, which
/// every rank of the node loads zero-copy. Part of ndshm/mpi.hpp (see there: collectives, errors,
/// lifetime); link `ndshm::mpi`.
#ifndef NDSHM_MPI_OBJECT_HPP
#define NDSHM_MPI_OBJECT_HPP

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "detail/mpi_node_object.hpp"
#include "detail/mpi_node_segment.hpp"
#include "detail/mpi_topology.hpp"
#include "error.hpp"
#include "mpi_topology.hpp"
#include "object.hpp"
#include "options.hpp"

namespace ndshm::mpi {

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
        const auto& s = detail::require_topology(topo.m_state, op, "");
        node_object o;
        o.m_topo = topo.m_state;
        o.m_object = wrap(detail::share_per_node(
            s, [&make](const options& node_opt) { return unwrap(ndshm::share(make(), node_opt)); }, attach, opt, op));
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
        const auto& s = detail::require_topology(topo.m_state, op, "");
        node_object o;
        o.m_topo = topo.m_state;
        o.m_object = wrap(detail::share_from_root(
            s, root, [&obj](const options& node_opt) { return unwrap(ndshm::share(obj, node_opt)); }, attach, opt, op));
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
    /// A handle (not owning) on the object segment `name` of this node.
    static detail::object_segment attach(const std::string& name, const options& opt, const std::string& op)
    {
        detail::core::npy_info info;
        std::uint32_t kind = 0;
        auto m = detail::core::open_npy_segment(opt, name, op, info, kind);
        const detail::core::parsed_object parsed = detail::core::parse_object_image(*m, info, kind, op, name);
        return {std::move(m), parsed.entries.size()};
    }
    static detail::object_segment unwrap(const shared_object& o)
    {
        return {detail::core::object_access::mapping_of(o), o.array_count()};
    }
    static shared_object wrap(detail::object_segment o)
    {
        return o.map ? detail::core::object_access::make(std::move(o.map), o.arrays) : shared_object();
    }

    std::shared_ptr<const detail::topology_state> m_topo;
    shared_object m_object;
};

} // namespace ndshm::mpi

#endif
