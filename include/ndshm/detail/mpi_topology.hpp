/// @file detail/mpi_topology.hpp
/// What an ndshm::mpi::topology knows (ndshm's duplicate of the communicator, the node and leaders'
/// communicators, which node each rank is on), and the collective that splits a communicator by node:
/// by machine (MPI_Comm_split_type), then, with emulated nodes, each machine's ranks into groups.
#ifndef NDSHM_DETAIL_MPI_TOPOLOGY_HPP
#define NDSHM_DETAIL_MPI_TOPOLOGY_HPP

#include <mpi.h>

#include <cerrno>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "../error.hpp"
#include "mpi_agree.hpp"
#include "mpi_calls.hpp"

namespace ndshm::mpi::detail {

/// The environment variable that splits every machine into that many emulated nodes (see topology).
inline constexpr const char* emulated_nodes_variable = "NDSHM_MPI_EMULATED_NODES";

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

/// The state of a new topology over `comm` (see topology's constructor): collective over `comm`.
inline std::shared_ptr<topology_state> make_topology(MPI_Comm comm, int emulated_nodes, std::size_t max_message_bytes)
{
    const std::string op = "topology";
    int initialized = 0;
    int finalized = 0;
    check(MPI_Initialized(&initialized), "MPI_Initialized", op, "");
    check(MPI_Finalized(&finalized), "MPI_Finalized", op, "");
    if (!initialized || finalized) {
        core::raise<error>(op, "", finalized ? "MPI is already finalised" : "MPI is not initialised",
                           "make ndshm::mpi objects between MPI_Init and MPI_Finalize",
                           make_error_code(errc::invalid_argument));
    }
    if (comm == MPI_COMM_NULL) {
        core::raise<error>(op, "", "the communicator is MPI_COMM_NULL",
                           "pass a communicator this rank belongs to, such as MPI_COMM_WORLD",
                           make_error_code(errc::invalid_argument));
    }
    auto s = std::make_shared<topology_state>();
    check(MPI_Comm_dup(comm, &s->comm), "MPI_Comm_dup", op, "");
    check(MPI_Comm_set_errhandler(s->comm, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler", op, "");
    check(MPI_Comm_rank(s->comm, &s->rank), "MPI_Comm_rank", op, "");
    check(MPI_Comm_size(s->comm, &s->size), "MPI_Comm_size", op, "");

    std::exception_ptr bad;
    try {
        s->emulated = emulated_nodes_from(emulated_nodes);
        if (max_message_bytes == 0 || max_message_bytes > static_cast<std::size_t>(INT_MAX)) {
            core::raise<error>(op, "", "max_message_bytes is " + std::to_string(max_message_bytes),
                               "pass 1 to " + std::to_string(INT_MAX) + " bytes (MPI counts are int)",
                               make_error_code(errc::invalid_argument));
        }
        s->max_message = max_message_bytes;
    } catch (...) {
        bad = std::current_exception();
    }
    agree(s->comm, s->rank, bad, op, "");
    fingerprint fp;
    fp.add(static_cast<std::uint64_t>(s->emulated)).add(s->max_message);
    check_same(s->comm, s->size, fp.value(),
               std::to_string(s->emulated) + " emulated nodes per machine, messages of at most " +
                   std::to_string(s->max_message) + " bytes",
               "the topology options (emulated_nodes or NDSHM_MPI_EMULATED_NODES, max_message_bytes)", op, "");

    MPI_Comm machine = MPI_COMM_NULL;
    check(MPI_Comm_split_type(s->comm, MPI_COMM_TYPE_SHARED, s->rank, MPI_INFO_NULL, &machine), "MPI_Comm_split_type",
          op, "");
    if (s->emulated > 1) {
        int mrank = 0;
        int msize = 1;
        int rc = MPI_Comm_rank(machine, &mrank);
        rc = rc == MPI_SUCCESS ? MPI_Comm_size(machine, &msize) : rc;
        const long long color = static_cast<long long>(mrank) * s->emulated / msize;
        rc = rc == MPI_SUCCESS ? MPI_Comm_split(machine, static_cast<int>(color), s->rank, &s->node) : rc;
        (void)MPI_Comm_free(&machine);
        check(rc, "MPI_Comm_split (emulated nodes)", op, "");
    } else {
        s->node = machine;
    }
    check(MPI_Comm_set_errhandler(s->node, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler", op, "");
    check(MPI_Comm_rank(s->node, &s->node_rank), "MPI_Comm_rank", op, "");
    check(MPI_Comm_size(s->node, &s->node_size), "MPI_Comm_size", op, "");
    check(MPI_Comm_split(s->comm, s->node_rank == 0 ? 0 : MPI_UNDEFINED, s->rank, &s->leaders),
          "MPI_Comm_split (leaders)", op, "");
    int where[2] = {0, 0}; // node index, node count
    if (s->leaders != MPI_COMM_NULL) {
        check(MPI_Comm_set_errhandler(s->leaders, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler", op, "");
        check(MPI_Comm_rank(s->leaders, &where[0]), "MPI_Comm_rank", op, "");
        check(MPI_Comm_size(s->leaders, &where[1]), "MPI_Comm_size", op, "");
    }
    check(MPI_Bcast(where, 2, MPI_INT, 0, s->node), "MPI_Bcast", op, "");
    s->node_index = where[0];
    s->node_count = where[1];
    s->node_of.resize(static_cast<std::size_t>(s->size));
    check(MPI_Allgather(&s->node_index, 1, MPI_INT, s->node_of.data(), 1, MPI_INT, s->comm), "MPI_Allgather", op, "");
    s->leader_of.assign(static_cast<std::size_t>(s->node_count), -1);
    for (int r = 0; r < s->size; ++r) {
        int& l = s->leader_of[static_cast<std::size_t>(s->node_of[static_cast<std::size_t>(r)])];
        if (l < 0) {
            l = r;
        }
    }
    return s;
}

/// The state of the topology passed to a collective.
/// @throws error if the topology is empty (moved from)
inline const topology_state& require_topology(const std::shared_ptr<const topology_state>& s, const std::string& op,
                                              const std::string& name)
{
    if (!s) {
        core::raise<error>(op, name, "the topology is empty (moved from)", "pass a constructed topology",
                           make_error_code(errc::invalid_argument));
    }
    return *s;
}

} // namespace ndshm::mpi::detail

#endif
