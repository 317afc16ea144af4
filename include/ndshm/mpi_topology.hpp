/// @file mpi_topology.hpp
/// `ndshm::mpi::topology`: which ranks of an MPI communicator share a machine (a node), each node's
/// leader, and the leaders' communicator; every ndshm::mpi object is made with one. Part of
/// ndshm/mpi.hpp (see there: collectives, errors, lifetime); link `ndshm::mpi`.
#ifndef NDSHM_MPI_TOPOLOGY_HPP
#define NDSHM_MPI_TOPOLOGY_HPP

#include <mpi.h>

#include <cstddef>
#include <memory>
#include <string>
#include <utility>

#include "detail/mpi_calls.hpp"
#include "detail/mpi_topology.hpp"
#include "error.hpp"

namespace ndshm::mpi {

class node_object;
class node_store;
class pool;
template <class T, std::size_t N>
class basic_node_array;

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
        : m_state(detail::make_topology(comm, opt.emulated_nodes, opt.max_message_bytes))
    {
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
    friend class pool;

    explicit topology(std::shared_ptr<const detail::topology_state> s) noexcept : m_state(std::move(s)) {}

    std::shared_ptr<const detail::topology_state> m_state;
};

} // namespace ndshm::mpi

#endif
