/// @file detail/mpi_calls.hpp
/// The MPI calls under ndshm/mpi.hpp: an MPI error as ndshm::error (errc::mpi_failure, with MPI's own
/// description), a barrier that orders shared-memory accesses, and transfers of any number of bytes in
/// messages of at most a chunk each (MPI counts are int).
#ifndef NDSHM_DETAIL_MPI_CALLS_HPP
#define NDSHM_DETAIL_MPI_CALLS_HPP

#include <mpi.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstddef>
#include <string>

#include "../error.hpp"

#if !defined(MPI_VERSION) || MPI_VERSION < 3
#error "ndshm/mpi.hpp needs MPI 3.0 or later (MPI_Comm_split_type)"
#endif

namespace ndshm::mpi::detail {

namespace core = ::ndshm::detail;

/// Tag of ndshm's point-to-point messages (on ndshm's own duplicate of the communicator).
inline constexpr int message_tag = 0x6e64;

/// Throws ndshm::error for an MPI call that returned `rc`, with MPI's description of it.
[[noreturn, gnu::noinline, gnu::cold]] inline void raise_mpi(int rc, const char* call, const std::string& op,
                                                             const std::string& name)
{
    char text[MPI_MAX_ERROR_STRING + 1] = {};
    int len = 0;
    std::string what;
    if (MPI_Error_string(rc, text, &len) == MPI_SUCCESS && len > 0) {
        what.assign(text, static_cast<std::size_t>(std::min(len, MPI_MAX_ERROR_STRING)));
    } else {
        what = "unknown MPI error";
    }
    int cls = rc;
    if (MPI_Error_class(rc, &cls) != MPI_SUCCESS) {
        cls = rc;
    }
    core::raise<error>(op, name,
                       std::string(call) + " failed: " + what + " (MPI error code " + std::to_string(rc) + ", class " +
                           std::to_string(cls) + ")",
                       "every rank of the communicator must make the same ndshm::mpi calls in the same order; if "
                       "they do, check the MPI installation and how the job was launched",
                       make_error_code(errc::mpi_failure));
}

/// Throws unless `rc` is MPI_SUCCESS.
inline void check(int rc, const char* call, const std::string& op, const std::string& name)
{
    if (rc != MPI_SUCCESS) {
        raise_mpi(rc, call, op, name);
    }
}

/// A barrier that also orders this process's memory accesses to shared segments around it.
inline void barrier(MPI_Comm c, const std::string& op, const std::string& name)
{
    std::atomic_thread_fence(std::memory_order_seq_cst);
    check(MPI_Barrier(c), "MPI_Barrier", op, name);
    std::atomic_thread_fence(std::memory_order_seq_cst);
}

/// Calls `f(offset, length)` for the pieces of at most `chunk` bytes that `n` bytes split into.
template <class F>
void for_each_chunk(std::size_t n, std::size_t chunk, F&& f)
{
    for (std::size_t off = 0; off < n; off += chunk) {
        f(off, static_cast<int>(std::min(chunk, n - off)));
    }
}

/// MPI_Bcast of `n` bytes in messages of at most `chunk` bytes (MPI counts are int).
inline void bcast_bytes(void* p, std::size_t n, int root, MPI_Comm c, std::size_t chunk, const std::string& op,
                        const std::string& name)
{
    auto* b = static_cast<unsigned char*>(p);
    for_each_chunk(n, chunk, [&](std::size_t off, int k) {
        check(MPI_Bcast(b + off, k, MPI_BYTE, root, c), "MPI_Bcast", op, name);
    });
}

/// MPI_Send of `n` bytes to `dest`, in messages of at most `chunk` bytes.
inline void send_bytes(const void* p, std::size_t n, int dest, MPI_Comm c, std::size_t chunk, const std::string& op,
                       const std::string& name)
{
    const auto* b = static_cast<const unsigned char*>(p);
    for_each_chunk(n, chunk, [&](std::size_t off, int k) {
        check(MPI_Send(b + off, k, MPI_BYTE, dest, message_tag, c), "MPI_Send", op, name);
    });
}

/// MPI_Recv of `n` bytes from `source`, in messages of at most `chunk` bytes.
inline void recv_bytes(void* p, std::size_t n, int source, MPI_Comm c, std::size_t chunk, const std::string& op,
                       const std::string& name)
{
    auto* b = static_cast<unsigned char*>(p);
    for_each_chunk(n, chunk, [&](std::size_t off, int k) {
        check(MPI_Recv(b + off, k, MPI_BYTE, source, message_tag, c, MPI_STATUS_IGNORE), "MPI_Recv", op, name);
    });
}

/// MPI_Bcast of a string (its length first).
inline void bcast_string(std::string& s, int root, MPI_Comm c, const std::string& op, const std::string& name)
{
    unsigned long long n = s.size();
    check(MPI_Bcast(&n, 1, MPI_UNSIGNED_LONG_LONG, root, c), "MPI_Bcast", op, name);
    s.resize(static_cast<std::size_t>(n));
    bcast_bytes(s.empty() ? nullptr : &s[0], s.size(), root, c, INT_MAX, op, name);
}

} // namespace ndshm::mpi::detail

#endif
