/// @file detail/mpi_node_object.hpp
/// The collectives of ndshm::mpi::node_object on a node's object segment (a mapping and its array
/// count, which the public class wraps in a shared_object): each leader shares its own object, or the
/// root shares one and the other nodes' leaders receive a copy of its segment's bytes.
#ifndef NDSHM_DETAIL_MPI_NODE_OBJECT_HPP
#define NDSHM_DETAIL_MPI_NODE_OBJECT_HPP

#include <mpi.h>

#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "../error.hpp"
#include "../options.hpp"
#include "mpi_agree.hpp"
#include "mpi_calls.hpp"
#include "mpi_node_segment.hpp"
#include "mpi_topology.hpp"
#include "npy.hpp"
#include "segment_impl.hpp"
#include "trailer.hpp"

namespace ndshm::mpi::detail {

/// A rank's handle on its node's object segment: the mapping and the number of arrays in the object.
struct object_segment {
    std::shared_ptr<core::mapping> map;
    std::size_t arrays = 0;

    std::string name() const { return map ? map->name() : std::string(); }
};

/// Shares an object for a node under the options it is given: what node_object's factories pass.
using share_fn = std::function<object_segment(const options&)>;
/// Maps the object segment `name` of this node (a handle that does not own it) under the options it is
/// given, for the operation `op`.
using attach_fn = std::function<object_segment(const std::string& name, const options&, const std::string& op)>;

/// node_object::share: each node's leader shares the object `share` makes, the node's other ranks map
/// that segment.
inline object_segment share_per_node(const topology_state& s, const share_fn& share, const attach_fn& attach,
                                     const options& opt, const std::string& op)
{
    object_segment o;
    const std::exception_ptr bad = create_on_node(
        s, 0,
        [&] {
            o = share(node_options(opt, s.node_index));
            return o.name();
        },
        [&](const std::string& name) { o = attach(name, attach_options(opt), op); }, op);
    agree(s.comm, s.rank, bad, op, o.name());
    return o;
}

/// node_object::from_root: rank `root` shares the object for its node (`share`, on the root only), the
/// leaders of the other nodes receive a copy of that segment's bytes into a segment of their own, and
/// every rank then maps its node's copy.
inline object_segment share_from_root(const topology_state& s, int root, const share_fn& share, const attach_fn& attach,
                                      const options& opt, const std::string& op)
{
    fingerprint fp;
    fp.add(static_cast<std::uint64_t>(static_cast<std::int64_t>(root)));
    check_same(s.comm, s.size, fp.value(), "root " + std::to_string(root), "the root", op, "");
    s.check_root(root, op, "");
    const int root_node = s.node_of[static_cast<std::size_t>(root)];
    object_segment o;
    std::exception_ptr bad;
    // size, trailer offset, data offset, data bytes, array count of the root's segment
    unsigned long long meta[5] = {};
    if (s.rank == root) {
        try {
            o = share(node_options(opt, root_node));
            const core::mapping& m = *o.map;
            const core::npy_info info = core::parse_npy(m.base(), m.size(), m.name());
            const core::trailer* t = core::find_trailer(m, info, op);
            meta[0] = m.size();
            meta[1] = core::trailer_offset_in(info, m.size());
            meta[2] = t->data_offset;
            meta[3] = t->data_bytes;
            meta[4] = o.arrays;
        } catch (...) {
            bad = std::current_exception();
        }
    }
    agree(s.comm, s.rank, bad, op, "");
    check(MPI_Bcast(meta, 5, MPI_UNSIGNED_LONG_LONG, root, s.comm), "MPI_Bcast", op, "");
    const auto name = [&o] { return o.name(); };
    const auto attach_node = [&](const std::string& n) { o = attach(n, attach_options(opt), op); };
    // The root's node: its ranks attach the root's segment.
    if (s.node_index == root_node) {
        bad = create_on_node(s, s.node_rank_of(root), name, attach_node, op);
    }
    agree(s.comm, s.rank, bad, op, o.name());
    if (s.node_count == 1) {
        return o;
    }
    // The other nodes: the leaders copy the root's bytes (all but the trailer, with the magic written
    // last, as any creator does), then their ranks attach.
    std::shared_ptr<core::mapping> m;
    if (s.leader() && s.node_index != root_node) {
        try {
            m = core::create_segment(node_options(opt, s.node_index), static_cast<std::size_t>(meta[0]), op);
        } catch (...) {
            bad = std::current_exception();
        }
    }
    agree(s.comm, s.rank, bad, op, "");
    if (s.leader()) {
        unsigned char* base = s.node_index == root_node ? o.map->base() : m->base();
        const std::size_t magic = sizeof core::npy_magic;
        bcast_bytes(base + magic, static_cast<std::size_t>(meta[1]) - magic, root_node, s.leaders, s.max_message, op,
                    o.name());
        if (m) {
            core::write_trailer(*m, static_cast<std::size_t>(meta[1]), core::kind_object,
                                static_cast<std::size_t>(meta[2]), static_cast<std::size_t>(meta[3]));
            m->publish();
            o = {std::move(m), static_cast<std::size_t>(meta[4])};
        }
    }
    if (s.node_index != root_node) {
        bad = create_on_node(s, 0, name, attach_node, op);
    }
    agree(s.comm, s.rank, bad, op, o.name());
    return o;
}

} // namespace ndshm::mpi::detail

#endif
