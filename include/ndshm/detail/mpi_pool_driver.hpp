/// @file detail/mpi_pool_driver.hpp
/// The driver's side of an ndshm::mpi::pool's calls: tasks go to the workers one at a time each, with
/// the parts of the arrays they name for a worker on another node; replies bring back the results,
/// what the tasks wrote, and the arrays they returned.
#ifndef NDSHM_DETAIL_MPI_POOL_DRIVER_HPP
#define NDSHM_DETAIL_MPI_POOL_DRIVER_HPP

#include <mpi.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <exception>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../error.hpp"
#include "mpi_calls.hpp"
#include "mpi_code_ref.hpp"
#include "mpi_pool_arrays.hpp"
#include "mpi_pool_messages.hpp"
#include "mpi_pool_state.hpp"
#include "pool_impl.hpp"

namespace ndshm::mpi::detail {

/// A task in flight on a worker: its index in the call, and the arrays sent with it.
struct sent {
    long index = -1;
    std::uint64_t id = 0;
    std::vector<core::task_array> arrays;
};

/// What rethrows the exception being handled.
inline std::function<void()> capture()
{
    std::exception_ptr e = std::current_exception();
    return [e] { std::rethrow_exception(e); };
}

/// The arrays a task names, one entry per segment (an array named twice gets the union of the parts).
inline std::vector<core::task_array> merge_arrays(const std::vector<core::task_array>& in)
{
    std::vector<core::task_array> out;
    for (const core::task_array& a : in) {
        if (!a.map) {
            continue;
        }
        auto it = std::find_if(out.begin(), out.end(), [&](const core::task_array& b) { return b.map == a.map; });
        if (it == out.end()) {
            out.push_back(a);
            continue;
        }
        const bool same = it->first == a.first && it->bytes == a.bytes;
        const std::size_t lo = std::min(it->first, a.first);
        const std::size_t hi = std::max(it->first + it->bytes, a.first + a.bytes);
        it->first = lo;
        it->bytes = hi - lo;
        it->writable = it->writable || a.writable;
        it->exclusive = it->exclusive && a.exclusive && same;
        it->only_for = it->only_for == a.only_for ? a.only_for : -1;
    }
    return out;
}

/// Sends task `t` to worker `w`, with the parts of the arrays it names if the worker is on another node.
inline sent send_task(pool_state& p, const char* op, std::size_t w, const core::task& t)
{
    const int rank = p.ranks[w];
    sent s;
    s.id = ++p.next_id;
    task_message m;
    m.kind = 1;
    m.id = s.id;
    m.invoke = code_ref_of(reinterpret_cast<std::uintptr_t>(t.invoke));
    m.fn = code_ref_of(t.fn);
    if (t.args.size() > core::frame_limit) {
        core::raise<error>(op, "",
                           "the task's arguments take " + std::to_string(t.args.size()) +
                               " bytes, more than a pool message may hold",
                           "pass large data as a shared_ndarray: only its name travels", core::errno_code(EMSGSIZE));
    }
    m.args = t.args;
    if (!p.shares_memory(w)) {
        s.arrays = merge_arrays(t.arrays);
        for (core::task_array& a : s.arrays) {
            if (a.only_for >= 0 && static_cast<std::size_t>(a.only_for) != w) {
                a.first = 0; // another worker's accumulator: this task never touches it
                a.bytes = 0;
            }
            wire_array x;
            describe_segment(x, a);
            x.first = a.first;
            x.bytes = a.bytes;
            x.writable = a.writable;
            x.exclusive = a.exclusive;
            m.arrays.push_back(std::move(x));
        }
    }
    send_message(p.comm, encode_message(m), rank, tag_task, op);
    for (const core::task_array& a : s.arrays) {
        send_bytes(a.map->base() + a.data_offset + a.first, a.bytes, rank, p.comm, p.piece, op, a.map->name());
    }
    return s;
}

/// Receives worker `w`'s reply to task `s` (announced by `st`): what the task wrote goes into the
/// driver's arrays, the arrays it returned into new arrays the driver owns; then the result goes to
/// `on_result`, or the task's failure to `fail`.
inline void receive_reply(pool_state& p, const char* op, std::size_t w, const MPI_Status& st, const sent& s,
                          const core::result_callback& on_result,
                          const std::function<void(std::function<void()>)>& fail)
{
    const int rank = p.ranks[w];
    const auto r = decode_message<reply_message>(recv_message(p.comm, st, op), op);
    if (r.id != s.id) {
        core::raise<error>(op, "", "rank " + std::to_string(rank) + " answered another task",
                           "report this as a bug in ndshm", make_error_code(errc::mpi_failure));
    }
    // What the task wrote, into the driver's arrays.
    std::vector<unsigned char> buf;
    for (const write_back& b : r.writes) {
        std::size_t total = 0;
        bool fits = b.array < s.arrays.size() && b.runs.size() % 2 == 0;
        for (std::size_t j = 0; fits && j < b.runs.size(); j += 2) {
            const core::task_array& a = s.arrays[b.array];
            fits = b.runs[j] >= a.first && b.runs[j] <= a.first + a.bytes &&
                   b.runs[j + 1] <= a.first + a.bytes - b.runs[j];
            total += static_cast<std::size_t>(b.runs[j + 1]);
        }
        if (!fits || !s.arrays[b.array].map->writable()) {
            core::raise<error>(op, "", "rank " + std::to_string(rank) + " sent back bytes outside the task's arrays",
                               "every rank of the pool must run the same executable",
                               make_error_code(errc::mpi_failure));
        }
        const core::task_array& a = s.arrays[b.array];
        unsigned char* data = a.map->base() + a.data_offset;
        if (b.runs.size() == 2) {
            recv_bytes(data + b.runs[0], total, rank, p.comm, p.piece, op, a.map->name());
        } else {
            buf.resize(total);
            recv_bytes(buf.data(), total, rank, p.comm, p.piece, op, a.map->name());
            std::size_t at = 0;
            for (std::size_t j = 0; j < b.runs.size(); j += 2) {
                std::memcpy(data + b.runs[j], buf.data() + at, static_cast<std::size_t>(b.runs[j + 1]));
                at += static_cast<std::size_t>(b.runs[j + 1]);
            }
        }
    }
    // Arrays the task returned: the driver's own (a task's argument), or new arrays it owns.
    segment_table results;
    for (const result_array& x : r.results) {
        segment_table::entry e;
        e.key = {x.dir, x.name, x.created};
        if (x.origin >= 0 && static_cast<std::size_t>(x.origin) < s.arrays.size()) {
            const core::task_array& a = s.arrays[static_cast<std::size_t>(x.origin)];
            e.map = a.map;
            e.info = info_of(a);
        } else {
            check_layout(x.type, x.shape, x.nbytes, 0, x.nbytes, op);
            e.map = make_segment(x.type, x.shape, x.fortran, "receive a task's result", e.info);
            recv_bytes(e.map->base() + e.info.data_offset, e.info.nbytes, rank, p.comm, p.piece, op, e.map->name());
        }
        results.entries.push_back(std::move(e));
    }
    if (!r.ok) {
        const core::task_failure f = core::decode_failure(r.payload);
        const std::string at = p.where(op, w);
        fail([at, f] {
            core::rethrow_failure_at(at, "fix the task or catch this exception; the worker keeps running", f);
        });
        return;
    }
    if (on_result) {
        try {
            resolver_scope scope(&results);
            on_result(static_cast<std::size_t>(s.index), r.payload);
        } catch (...) {
            fail(capture());
        }
    }
}
/// Runs the tasks on the workers (at least one): each task with a fixed worker on that worker, the
/// others on whichever worker is free, one task per worker at a time. Each result is passed to
/// `on_result` on the driver; the first failure is thrown once the tasks already started have ended.
inline void run_on_workers(pool_state& p, const char* op, std::vector<core::task>& tasks,
                           const core::result_callback& on_result)
{
    std::function<void()> failed;
    const auto fail = [&](std::function<void()> raise) {
        if (!failed) {
            failed = std::move(raise);
        }
    };
    const std::size_t n = p.ranks.size();
    std::vector<std::deque<std::size_t>> fixed(n);
    std::deque<std::size_t> any;
    for (std::size_t i = 0; i < tasks.size(); ++i) {
        if (tasks[i].worker >= 0) {
            fixed[static_cast<std::size_t>(tasks[i].worker) % n].push_back(i);
        } else {
            any.push_back(i);
        }
    }
    std::vector<sent> busy(n);
    std::size_t inflight = 0;
    for (;;) {
        if (!failed) {
            for (std::size_t k = 0; k < n; ++k) {
                const std::size_t w = (p.rr + k) % n;
                if (busy[w].index >= 0) {
                    continue;
                }
                const bool from_any = fixed[w].empty();
                std::deque<std::size_t>& q = from_any ? any : fixed[w];
                if (q.empty()) {
                    continue;
                }
                const std::size_t i = q.front();
                q.pop_front();
                if (from_any) {
                    p.rr = (w + 1) % n;
                }
                try {
                    busy[w] = send_task(p, op, w, tasks[i]);
                    busy[w].index = static_cast<long>(i);
                    ++inflight;
                } catch (...) {
                    fail(capture());
                    break;
                }
            }
        }
        if (inflight == 0) {
            break;
        }
        const MPI_Status st = wait_message(p.comm, MPI_ANY_SOURCE, tag_reply, op);
        const auto it = std::find(p.ranks.begin(), p.ranks.end(), st.MPI_SOURCE);
        if (it == p.ranks.end()) {
            core::raise<error>(op, "", "a reply from rank " + std::to_string(st.MPI_SOURCE) + ", not a worker",
                               "report this as a bug in ndshm", make_error_code(errc::mpi_failure));
        }
        const auto w = static_cast<std::size_t>(it - p.ranks.begin());
        sent s = std::move(busy[w]);
        busy[w] = sent{};
        --inflight;
        receive_reply(p, op, w, st, s, on_result, fail);
    }
    if (failed) {
        failed();
    }
    if (!any.empty() || std::any_of(fixed.begin(), fixed.end(), [](const auto& q) { return !q.empty(); })) {
        core::raise<error>(op, "", "some tasks could not be started", "", core::errno_code(ECANCELED));
    }
}

} // namespace ndshm::mpi::detail

#endif
