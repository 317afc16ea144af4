/// @file detail/mpi_node_segment.hpp
/// One segment per node: the name node k's segment is created under, the options the node's other
/// ranks attach it with, the collective in which one rank of a node creates it and the others attach
/// it, and the collective release (every rank drops its handle, then the owner unlinks the name).
#ifndef NDSHM_DETAIL_MPI_NODE_SEGMENT_HPP
#define NDSHM_DETAIL_MPI_NODE_SEGMENT_HPP

#include <mpi.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <string>

#include "../error.hpp"
#include "../options.hpp"
#include "mpi_agree.hpp"
#include "mpi_calls.hpp"
#include "mpi_topology.hpp"
#include "segment_impl.hpp"

namespace ndshm::mpi::detail {

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

/// Collective over the node: the rank `from` of the node (in node_comm) runs `create()`, which makes the
/// node's segment and returns its name; then, if it succeeded, the node's other ranks run
/// `attach(name)`. Returns what this rank threw, for agree (which also keeps the owner from unlinking
/// before every rank has attached).
inline std::exception_ptr create_on_node(const topology_state& s, int from, const std::function<std::string()>& create,
                                         const std::function<void(const std::string&)>& attach, const std::string& op)
{
    std::exception_ptr bad;
    name_message msg;
    if (s.node_rank == from) {
        try {
            msg.set(create());
        } catch (...) {
            bad = std::current_exception();
        }
    }
    msg.bcast(from, s.node, op);
    if (s.node_rank != from && msg.ok()) {
        try {
            attach(msg.name());
        } catch (...) {
            bad = std::current_exception();
        }
    }
    return bad;
}

/// The collective end of a node's segment: every rank but the owner drops its handle (`drop`), the
/// owner unlinks the name once all have, then drops its own. After it, the name is gone on every rank.
/// @throws on the ranks of a node whose ranks name different segments; the owner if unlink fails
inline void release_node_segment(const topology_state& s, const std::shared_ptr<core::mapping>& m,
                                 const std::function<void()>& drop, const std::string& op)
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

} // namespace ndshm::mpi::detail

#endif
