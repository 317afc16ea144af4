/// @file detail/queue_format.hpp
/// The layout of an array queue's segment and the checks applied to it.
///
/// A queue is a segment like an array's: a `.npy` header (a 1-d uint8 array, so NumPy and `ndshm ls`
/// can read it), the data at byte 4096, then ndshm's trailer with kind `kind_queue`. The data holds a
/// 256-byte control block and a ring of fixed-size entries, each the name and dtype of one queued
/// array. Only names travel through the queue, never array bytes.
#ifndef NDSHM_DETAIL_QUEUE_FORMAT_HPP
#define NDSHM_DETAIL_QUEUE_FORMAT_HPP

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "../dtype.hpp"
#include "sync.hpp"

namespace ndshm::detail {

inline constexpr char queue_magic[8] = {'N', 'D', 'S', 'H', 'M', 'Q', 'U', '1'};
inline constexpr std::uint32_t queue_version = 2;
/// Room for a segment name in an entry: 255 characters and a terminating NUL.
inline constexpr std::size_t queue_name_room = 256;
/// Upper bound of a queue's capacity (the ring index and count share one 64-bit word).
inline constexpr std::size_t queue_max_capacity = std::size_t(1) << 24;

/// The control block at the start of the queue's data. Every field is checked before use.
struct queue_control {
    char magic[8];               // 0 "NDSHMQU1"
    std::uint32_t version;       // 8 queue_version
    std::uint32_t entry_size;    // 12 sizeof(queue_entry)
    std::uint64_t capacity;      // 16 entries in the ring, 1..queue_max_capacity
    std::uint64_t state;         // 24 (head << 32) | count, one atomic store per change
    std::uint32_t closed;        // 32 1 after close() or remove() (atomic)
    std::uint32_t not_empty;     // 36 futex word: bumped when an entry is added or the queue closes
    std::uint32_t not_full;      // 40 futex word: bumped when an entry is taken or the queue closes
    std::uint32_t pop_waiters;   // 44 processes waiting in pop (a waiter killed while waiting leaves it high:
    std::uint32_t push_waiters;  // 48 that only costs a spare wake-up)
    std::uint32_t reserved0;     // 52
    std::uint64_t pushed;        // 56 arrays pushed so far
    std::uint64_t popped;        // 64 arrays popped so far
    unsigned char reserved1[56]; // 72
    lock_area lock;              // 128 ndshm's lock (sync.hpp), guarding state and the ring
    unsigned char reserved2[64]; // 192
};
static_assert(sizeof(queue_control) == 256, "the queue control block is 256 bytes");

/// One queued array: its segment name (NUL-terminated), dtype, and the identity of the segment the
/// pusher handed over: device and inode of its file, and the creation time in its trailer (a file
/// system may give a freed inode number to a new file). A name removed and created again while queued
/// is never taken for it: not popped, not unlinked.
struct queue_entry {
    char name[queue_name_room];
    std::uint32_t dtype; // ndshm::dtype as an integer
    std::uint32_t reserved;
    std::uint64_t dev;
    std::uint64_t ino;
    std::uint64_t created_ns;
};
static_assert(sizeof(queue_entry) == 288, "a queue entry is 288 bytes");

/// Data bytes of a queue of `capacity` entries.
constexpr std::size_t queue_data_bytes(std::size_t capacity) noexcept
{
    return sizeof(queue_control) + capacity * sizeof(queue_entry);
}

inline std::uint64_t queue_pack(std::uint64_t head, std::uint64_t count) noexcept { return head << 32 | count; }
inline std::uint64_t queue_head(std::uint64_t state) noexcept { return state >> 32; }
inline std::uint64_t queue_count(std::uint64_t state) noexcept { return state & 0xffffffffu; }

/// True if `e` holds a usable segment name: 1 to 255 characters of [A-Za-z0-9._-], NUL-terminated,
/// not starting with '.', a known dtype, and a file identity. Queue entries come from shared memory: untrusted.
inline bool queue_entry_valid(const queue_entry& e, std::string& name, ndshm::dtype& type)
{
    const void* nul = std::memchr(e.name, '\0', sizeof e.name);
    if (nul == nullptr || nul == e.name || e.name[0] == '.') {
        return false;
    }
    const auto n = static_cast<std::size_t>(static_cast<const char*>(nul) - e.name);
    for (std::size_t i = 0; i < n; ++i) {
        const char c = e.name[i];
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                        c == '_' || c == '-';
        if (!ok) {
            return false;
        }
    }
    if (e.dtype > static_cast<std::uint32_t>(ndshm::dtype::complex128) || e.ino == 0) {
        return false;
    }
    name.assign(e.name, n);
    type = static_cast<ndshm::dtype>(e.dtype);
    return true;
}

} // namespace ndshm::detail

#endif
