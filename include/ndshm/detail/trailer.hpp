/// @file detail/trailer.hpp
/// ndshm's own record, stored after the array data (NumPy rejects extra header keys, so it cannot
/// live in the header). Fixed 256 bytes, little-endian, at a 64-byte aligned offset.
#ifndef NDSHM_DETAIL_TRAILER_HPP
#define NDSHM_DETAIL_TRAILER_HPP

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>

#include <sys/types.h>

#include "liveness.hpp" // process_start_time

namespace ndshm::detail {

inline constexpr char trailer_magic[8] = {'N', 'D', 'S', 'H', 'M', 'T', 'R', 'L'};
inline constexpr std::uint32_t trailer_version = 1;

enum : std::uint32_t {
    kind_array = 1,
    kind_object = 2,
    kind_channel = 3,
    kind_queue = 4,
    kind_dict = 5,
    kind_list = 6
};
enum : std::uint32_t { state_writing = 0, state_ready = 1 };
enum : std::uint32_t {
    flag_persisted = 1u << 0,
    flag_lock = 1u << 1, ///< the lock area holds an initialised ndshm lock (detail/sync.hpp, lock.hpp)
};

/// The trailer's byte layout. `state` and `flags` are accessed atomically.
struct trailer {
    char magic[8];               //   0 "NDSHMTRL"
    std::uint32_t version;       //   8 format version of this record (1)
    std::uint32_t size;          //  12 sizeof(trailer) == 256
    std::uint32_t kind;          //  16 kind_array, kind_object, kind_channel, kind_queue, kind_dict or kind_list
    std::uint32_t state;         //  20 state_writing until published, then state_ready
    std::uint32_t flags;         //  24 flag_persisted, flag_lock
    std::uint32_t uid;           //  28 creator's effective uid
    std::uint64_t creator_pid;   //  32
    std::uint64_t creator_start; //  40 creator's start time, clock ticks since boot (/proc/PID/stat field 22)
    std::uint64_t data_offset;   //  48 first data byte
    std::uint64_t data_bytes;    //  56 data length
    std::uint64_t created_ns;    //  64 CLOCK_REALTIME at creation, nanoseconds
    unsigned char reserved0[56]; //  72 zero
    unsigned char lock[64];      // 128 the per-array lock (detail::lock_area), zero when unused
    unsigned char reserved1[64]; // 192 zero
};
static_assert(sizeof(trailer) == 256, "the trailer is 256 bytes on every platform");

/// True if `t` starts with the trailer's magic: ndshm wrote it (of some format version).
inline bool has_trailer_magic(const trailer& t) noexcept
{
    return std::memcmp(t.magic, trailer_magic, sizeof trailer_magic) == 0;
}

/// True if `t` is of the format version (and size) this ndshm reads.
constexpr bool known_trailer_format(const trailer& t) noexcept
{
    return t.version == trailer_version && t.size == sizeof(trailer);
}

/// Now on the real-time clock, in nanoseconds since the epoch: what the trailer's `created_ns` records.
inline std::int64_t now_ns() noexcept
{
    struct timespec ts {};
    ::clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

/// Offset of the trailer for data ending at `data_end`.
constexpr std::size_t trailer_offset(std::size_t data_end) noexcept { return (data_end + 63) / 64 * 64; }

inline std::uint32_t load_acquire(const std::uint32_t& v) noexcept { return __atomic_load_n(&v, __ATOMIC_ACQUIRE); }
inline void store_release(std::uint32_t& v, std::uint32_t x) noexcept { __atomic_store_n(&v, x, __ATOMIC_RELEASE); }
inline void fetch_or(std::uint32_t& v, std::uint32_t x) noexcept { (void)__atomic_fetch_or(&v, x, __ATOMIC_ACQ_REL); }

} // namespace ndshm::detail

#endif
