/// @file detail/mpi_pool_messages.hpp
/// The messages of an ndshm::mpi::pool on its own communicator: a task (with the parts of the arrays
/// it names, for a worker on another node), a worker's reply (with what the task wrote and the arrays
/// it returned), their cereal encoding, and the waits, sends and receives that carry them.
#ifndef NDSHM_DETAIL_MPI_POOL_MESSAGES_HPP
#define NDSHM_DETAIL_MPI_POOL_MESSAGES_HPP

#include <mpi.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <istream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <cereal/archives/binary.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>

#include "../error.hpp"
#include "mpi_calls.hpp"
#include "mpi_code_ref.hpp"
#include "pool_impl.hpp"

namespace ndshm::mpi::detail {

/// Tags on the pool's own communicator: a task (or stop) to a worker, a worker's reply, array bytes.
inline constexpr int tag_task = 0x6e70;
inline constexpr int tag_reply = 0x6e71;
inline constexpr int tag_data = message_tag;
/// The largest single message of array bytes the pool sends (also bounded by the topology's
/// max_message_bytes); a worker that must drop data it cannot store receives it in pieces of this size.
inline constexpr std::size_t pool_piece = std::size_t(64) << 20;

/// An array a task names, and the part of its data that follows the task message (driver to a worker
/// on another node).
struct wire_array {
    std::string dir, name;
    std::uint64_t created = 0;
    std::uint8_t type = 0;
    std::vector<std::uint64_t> shape;
    bool fortran = false;
    std::uint64_t nbytes = 0, first = 0, bytes = 0;
    bool writable = false, exclusive = false;
    template <class A>
    void serialize(A& ar)
    {
        ar(dir, name, created, type, shape, fortran, nbytes, first, bytes, writable, exclusive);
    }
};

struct task_message {
    std::uint32_t kind = 0; // 1: a task, 2: stop
    std::uint64_t id = 0;
    code_ref invoke, fn;
    std::string args;
    std::vector<wire_array> arrays;
    template <class A>
    void serialize(A& ar)
    {
        ar(kind, id, invoke, fn, args, arrays);
    }
};

/// Bytes of array `array` of the task that the task changed, as (offset in the data, length) pairs;
/// their bytes follow the reply, one message (in pieces) per write-back.
struct write_back {
    std::uint32_t array = 0;
    std::vector<std::uint64_t> runs;
    template <class A>
    void serialize(A& ar)
    {
        ar(array, runs);
    }
};

/// An array a task returned: the worker's segment (as the result names it), and either the task's
/// array it is a copy of (`origin`) or its bytes, which follow.
struct result_array {
    std::string dir, name;
    std::uint64_t created = 0;
    std::int64_t origin = -1;
    std::uint8_t type = 0;
    std::vector<std::uint64_t> shape;
    bool fortran = false;
    std::uint64_t nbytes = 0;
    template <class A>
    void serialize(A& ar)
    {
        ar(dir, name, created, origin, type, shape, fortran, nbytes);
    }
};

struct reply_message {
    std::uint64_t id = 0;
    bool ok = true;
    std::string payload; // the encoded result, or the encoded failure
    std::vector<write_back> writes;
    std::vector<result_array> results;
    template <class A>
    void serialize(A& ar)
    {
        ar(id, ok, payload, writes, results);
    }
};

template <class M>
std::string encode_message(const M& m)
{
    return core::encode([&](cereal::BinaryOutputArchive& ar) { ar(m); });
}

template <class M>
M decode_message(std::string_view bytes, const std::string& op)
{
    try {
        core::memory_buf buf(bytes);
        std::istream is(&buf);
        cereal::BinaryInputArchive ar(is);
        M m;
        ar(m);
        return m;
    } catch (const cereal::Exception& e) {
        core::raise<error>(op, "", std::string("a malformed pool message: cereal: ") + e.what(),
                           "every rank of the pool must run the same executable", make_error_code(errc::mpi_failure));
    }
}

/// Waits for a message with `tag` from `source` (MPI_ANY_SOURCE: any) without keeping a core busy:
/// MPI_Iprobe, then sleeps that grow to a millisecond. `idle()` runs once after 100 ms of waiting.
inline MPI_Status wait_message(MPI_Comm c, int source, int tag, const std::string& op,
                               const std::function<void()>& idle = {})
{
    MPI_Status st{};
    const auto start = std::chrono::steady_clock::now();
    bool idled = !idle;
    for (int round = 0;; ++round) {
        int flag = 0;
        check(MPI_Iprobe(source, tag, c, &flag, &st), "MPI_Iprobe", op, "");
        if (flag) {
            return st;
        }
        if (round < 64) {
            continue;
        }
        std::this_thread::sleep_for(std::chrono::microseconds(std::min(1000, 10 * (round - 63))));
        if (!idled && std::chrono::steady_clock::now() - start > std::chrono::milliseconds(100)) {
            idled = true;
            idle();
        }
    }
}

/// Receives the message `st` announced (bytes).
inline std::string recv_message(MPI_Comm c, const MPI_Status& st, const std::string& op)
{
    int n = 0;
    check(MPI_Get_count(&st, MPI_BYTE, &n), "MPI_Get_count", op, "");
    std::string s(static_cast<std::size_t>(std::max(n, 0)), '\0');
    MPI_Status got{};
    check(MPI_Recv(s.empty() ? nullptr : &s[0], n, MPI_BYTE, st.MPI_SOURCE, st.MPI_TAG, c, &got), "MPI_Recv", op, "");
    return s;
}

inline void send_message(MPI_Comm c, const std::string& s, int dest, int tag, const std::string& op)
{
    if (s.size() > static_cast<std::size_t>(INT_MAX)) {
        core::raise<error>(op, "",
                           "a pool message takes " + std::to_string(s.size()) + " bytes, more than MPI can send",
                           "pass large data as a shared_ndarray", core::errno_code(EMSGSIZE));
    }
    check(MPI_Send(s.data(), static_cast<int>(s.size()), MPI_BYTE, dest, tag, c), "MPI_Send", op, "");
}

/// Receives `n` bytes sent with send_bytes(..., piece) and drops them.
inline void drop_bytes(std::size_t n, int source, MPI_Comm c, std::size_t piece, const std::string& op)
{
    std::vector<unsigned char> scratch(std::min(n, piece));
    for (std::size_t off = 0; off < n; off += piece) {
        recv_bytes(scratch.data(), std::min(piece, n - off), source, c, piece, op, "");
    }
}

} // namespace ndshm::mpi::detail

#endif
