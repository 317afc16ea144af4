/// @file detail/mpi_pool_worker.hpp
/// A worker's side of an ndshm::mpi::pool: the loop that runs the driver's tasks until it says stop.
/// A worker on the driver's node attaches the driver's arrays by name; one on another node receives
/// the parts a task works on into copies of its own, and sends back what the task wrote and the arrays
/// it returned.
#ifndef NDSHM_DETAIL_MPI_POOL_WORKER_HPP
#define NDSHM_DETAIL_MPI_POOL_WORKER_HPP

#include <mpi.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "../dtype.hpp"
#include "../error.hpp"
#include "mpi_calls.hpp"
#include "mpi_code_ref.hpp"
#include "mpi_pool_arrays.hpp"
#include "mpi_pool_messages.hpp"
#include "mpi_pool_state.hpp"
#include "pool_impl.hpp"

namespace ndshm::mpi::detail {

/// A worker's copies of arrays that live on another node, kept between tasks (until the worker has
/// been idle for 100 ms), and the copies the current task uses.
class local_copies : public core::array_resolver {
public:
    using copy = segment_table::entry;
    struct in_task {
        std::size_t copy = 0;
        wire_array wire;
        std::vector<unsigned char> before; // the part as it came, for a non-exclusive writable array
    };
    std::vector<copy> cache;
    std::vector<in_task> task;

    std::shared_ptr<core::mapping> resolve(const std::string& dir, const std::string& name, std::uint64_t created,
                                           core::npy_info& info) override
    {
        const segment_key k{dir, name, created};
        for (const in_task& t : task) {
            if (cache[t.copy].key == k) {
                info = cache[t.copy].info;
                return cache[t.copy].map;
            }
        }
        core::raise<error>("mpi::pool worker", name,
                           "the task names an array of the driver's node that was not sent with it",
                           "pass shared arrays as the task's arguments (not inside other values)",
                           make_error_code(errc::invalid_argument));
    }

    /// The copy of `w`, made if this worker has none of that layout.
    std::size_t get(const wire_array& w, const std::string& op)
    {
        const segment_key k{w.dir, w.name, w.created};
        for (std::size_t i = 0; i < cache.size(); ++i) {
            const copy& c = cache[i];
            if (c.key == k && c.info.type == static_cast<dtype>(w.type) && c.info.fortran_order == w.fortran &&
                c.info.shape == to_sizes(w.shape)) {
                return i;
            }
        }
        cache.erase(std::remove_if(cache.begin(), cache.end(), [&](const copy& c) { return c.key == k; }), cache.end());
        copy c;
        c.key = k;
        c.map = make_segment(w.type, w.shape, w.fortran, op, c.info);
        cache.push_back(std::move(c));
        return cache.size() - 1;
    }

    /// The data of the current task's `i`-th array in this worker's copy.
    unsigned char* data(std::size_t i) const
    {
        const copy& c = cache[task[i].copy];
        return c.map->base() + c.info.data_offset;
    }

    /// Receives the parts of the arrays task `m` names into this worker's copies: all of them, even
    /// if one cannot be stored. Returns what failed, if anything did.
    std::exception_ptr receive(const pool_state& p, const task_message& m, const std::string& op)
    {
        std::exception_ptr failure;
        task.clear();
        for (const wire_array& x : m.arrays) {
            if (failure) {
                drop_bytes(static_cast<std::size_t>(x.bytes), p.driver, p.comm, p.piece, op);
                continue;
            }
            try {
                check_layout(x.type, x.shape, x.nbytes, x.first, x.bytes, op);
                in_task t;
                t.copy = get(x, op);
                t.wire = x;
                task.push_back(std::move(t));
            } catch (...) {
                failure = std::current_exception();
                drop_bytes(static_cast<std::size_t>(x.bytes), p.driver, p.comm, p.piece, op);
                continue;
            }
            in_task& t = task.back();
            unsigned char* part = data(task.size() - 1) + x.first;
            recv_bytes(part, static_cast<std::size_t>(x.bytes), p.driver, p.comm, p.piece, op, x.name);
            if (x.writable && !x.exclusive) {
                t.before.assign(part, part + x.bytes);
            }
        }
        return failure;
    }

    /// What the task wrote into the writable arrays, as write-backs into `r`; returns the data of each
    /// write-back's array.
    std::vector<const unsigned char*> write_backs(reply_message& r) const
    {
        std::vector<const unsigned char*> sources;
        for (std::size_t i = 0; i < task.size(); ++i) {
            const in_task& t = task[i];
            if (!t.wire.writable) {
                continue;
            }
            const unsigned char* d = data(i);
            write_back b;
            b.array = static_cast<std::uint32_t>(i);
            if (t.wire.exclusive) {
                if (t.wire.bytes > 0) {
                    b.runs = {t.wire.first, t.wire.bytes};
                }
            } else {
                b.runs = changed_runs(d + t.wire.first, t.before.data(), static_cast<std::size_t>(t.wire.bytes),
                                      itemsize(static_cast<dtype>(t.wire.type)));
                for (std::size_t j = 0; j < b.runs.size(); j += 2) {
                    b.runs[j] += t.wire.first;
                }
            }
            if (!b.runs.empty()) {
                r.writes.push_back(std::move(b));
                sources.push_back(d);
            }
        }
        return sources;
    }

    /// The index of the current task's array whose copy `m` is, or -1.
    std::int64_t origin_of(const std::shared_ptr<core::mapping>& m) const
    {
        std::int64_t origin = -1;
        for (std::size_t i = 0; i < task.size(); ++i) {
            if (cache[task[i].copy].map == m) {
                origin = static_cast<std::int64_t>(i);
            }
        }
        return origin;
    }
};

/// Runs task `m` in this worker: its result (or its failure) into `r`, the arrays it returned (when
/// they travel by value) into `returned`. On another node than the driver's (`local` false), the
/// arrays the task names are `copies`.
inline void run_task(const task_message& m, const std::exception_ptr& failure, bool local, local_copies& copies,
                     core::array_recorder& returned, std::string& result, reply_message& r)
{
    try {
        if (failure) {
            std::rethrow_exception(failure);
        }
        const auto invoke = reinterpret_cast<core::invoker_fn>(address_of(m.invoke));
        const std::uintptr_t fn = address_of(m.fn);
        // On another node than the driver's, names of the driver's segments mean nothing: arrays are
        // this worker's copies, and returned arrays travel by value.
        resolver_scope scope(local ? nullptr : &copies);
        core::array_recorder* const outer = std::exchange(core::current_array_recorder(), local ? nullptr : &returned);
        struct restore {
            core::array_recorder* outer;
            ~restore() { core::current_array_recorder() = outer; }
        } undo{outer};
        result.clear();
        invoke(fn, m.args, result);
        if (result.size() > core::frame_limit) {
            core::raise<error>("return a task result", "",
                               "the result takes " + std::to_string(result.size()) + " bytes, more than the " +
                                   std::to_string(core::frame_limit) + " a pool message may hold",
                               "return a shared_ndarray instead", core::errno_code(EMSGSIZE));
        }
        r.payload = std::move(result);
    } catch (...) {
        r.ok = false;
        r.payload = core::encode_failure(core::describe_current_exception());
        returned.arrays.clear();
    }
}

/// Sends reply `r` to the driver, then the bytes of its write-backs (from `sources`) and of the
/// returned arrays that travel by value.
inline void send_reply(const pool_state& p, const reply_message& r, const std::vector<const unsigned char*>& sources,
                       const core::array_recorder& returned, const std::string& op)
{
    send_message(p.comm, encode_message(r), p.driver, tag_reply, op);
    std::vector<unsigned char> buf;
    for (std::size_t i = 0; i < r.writes.size(); ++i) {
        const write_back& b = r.writes[i];
        if (b.runs.size() == 2) {
            send_bytes(sources[i] + b.runs[0], static_cast<std::size_t>(b.runs[1]), p.driver, p.comm, p.piece, op, "");
            continue;
        }
        buf.clear();
        for (std::size_t j = 0; j < b.runs.size(); j += 2) {
            buf.insert(buf.end(), sources[i] + b.runs[j], sources[i] + b.runs[j] + b.runs[j + 1]);
        }
        send_bytes(buf.data(), buf.size(), p.driver, p.comm, p.piece, op, "");
    }
    for (std::size_t i = 0; i < returned.arrays.size(); ++i) {
        if (r.results[i].origin < 0) {
            const core::task_array& a = returned.arrays[i];
            send_bytes(a.map->base() + a.data_offset, a.nbytes, p.driver, p.comm, p.piece, op, a.map->name());
        }
    }
}

/// The worker's loop: run tasks until the driver says stop.
inline void serve(const pool_state& p)
{
    const std::string op = "mpi::pool worker";
    const auto w = static_cast<std::size_t>(std::find(p.ranks.begin(), p.ranks.end(), p.topo->rank) - p.ranks.begin());
    core::worker_state& ws = core::current_worker();
    const core::worker_state saved = ws;
    ws.info = {true, w, p.ranks.size()};
    ws.parent = p.parent;
    core::worker_mapping_cache& attached = core::worker_mappings();
    const bool was_enabled = attached.enabled;
    attached.enabled = true;
    local_copies copies;
    const bool local = p.topo->node_index == p.node_of(p.driver);
    std::string result;
    for (;;) {
        const MPI_Status st = wait_message(p.comm, p.driver, tag_task, op, [&] {
            attached.clear(); // idle: let go of the driver's arrays and of the copies
            copies.cache.clear();
        });
        const auto m = decode_message<task_message>(recv_message(p.comm, st, op), op);
        if (m.kind != 1) {
            break;
        }
        reply_message r;
        r.id = m.id;
        const std::exception_ptr failure = copies.receive(p, m, op);
        core::array_recorder returned;
        returned.keep = true;
        run_task(m, failure, local, copies, returned, result, r);
        // What the task wrote goes back (also when it threw, as fork_pool's workers' writes stay).
        const std::vector<const unsigned char*> sources = copies.write_backs(r);
        for (const core::task_array& a : returned.arrays) {
            result_array x;
            describe_segment(x, a);
            x.origin = copies.origin_of(a.map);
            r.results.push_back(std::move(x));
        }
        send_reply(p, r, sources, returned, op);
        copies.task.clear();
    }
    copies.cache.clear();
    attached.clear();
    attached.enabled = was_enabled;
    ws = saved;
}

} // namespace ndshm::mpi::detail

#endif
