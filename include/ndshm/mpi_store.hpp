/// @file mpi_store.hpp
/// `ndshm::mpi::node_store`: a store (see ndshm/store.hpp) opened by each node's leader, so that an
/// array is loaded from disk once per node and the node's other ranks attach it. Part of
/// ndshm/mpi.hpp (see there: collectives, errors, lifetime); link `ndshm::mpi`.
#ifndef NDSHM_MPI_STORE_HPP
#define NDSHM_MPI_STORE_HPP

#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <type_traits>

#include "detail/mpi_agree.hpp"
#include "detail/mpi_calls.hpp"
#include "detail/mpi_node_segment.hpp"
#include "detail/mpi_topology.hpp"
#include "error.hpp"
#include "mpi_topology.hpp"
#include "options.hpp"
#include "shared_ndarray.hpp"
#include "store.hpp"

namespace ndshm::mpi {

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
        const auto& s = detail::require_topology(topo.m_state, op, dir);
        m_topo = topo.m_state;
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
        const std::exception_ptr bad = detail::create_on_node(
            s, 0,
            [&] {
                a = m_store->get<T>(key, rows);
                return a.name();
            },
            [&](const std::string& name) {
                options o = detail::attach_options(m_opt);
                o.read_only = true;
                a = shared_ndarray<const T>::attach(name, o);
            },
            op);
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
