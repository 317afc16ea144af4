/// @file detail/queue_format.hpp
/// The layout of an array queue's segment and the checks applied to it.
///
/// A queue is a segment like an array's: a `.npy` header (a 1-d uint8 array, so NumPy and `ndshm ls`
/// can read it), the data at byte 4096, then ndshm's trailer with kind `kind_queue`. The data holds a
/// 256-byte control block, a ring of fixed-size entries (each the name, dtype and identity of one queued
/// array or object) and the recycling pool: one record per segment that the queue hands out again
/// (array_queue::make, array_queue::share). Only names travel through the queue, never array bytes.
///
/// A pool record is free (the segment belongs to the queue, waiting to be reused), held (by the
/// process named in it: a producer that made it, or a consumer that popped it), or queued (an entry of
/// the ring names it). Records change under the queue's lock, except that a holder lets its own record
/// go without it: one store of `free` (or `empty`, when the segment leaves the pool), so that dropping
/// an array never waits for a stopped process. Every record is checked before use.
#ifndef NDSHM_DETAIL_QUEUE_FORMAT_HPP
#define NDSHM_DETAIL_QUEUE_FORMAT_HPP

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "../dtype.hpp"
#include "segment_names.hpp"
#include "sync.hpp"

namespace ndshm::detail {

inline constexpr char queue_magic[8] = {'N', 'D', 'S', 'H', 'M', 'Q', 'U', '1'};
inline constexpr std::uint32_t queue_version = 3;
/// Room for a segment name in an entry: 255 characters and a terminating NUL.
inline constexpr std::size_t queue_name_room = 256;
/// Upper bound of a queue's capacity (the ring index and count share one 64-bit word).
inline constexpr std::size_t queue_max_capacity = std::size_t(1) << 24;
/// Upper bound of the records of a queue's recycling pool.
inline constexpr std::size_t queue_max_pool = 65536;

/// The control block at the start of the queue's data. Every field is checked before use.
struct queue_control {
    char magic[8];               //   0 "NDSHMQU1"
    std::uint32_t version;       //   8 queue_version
    std::uint32_t entry_size;    //  12 sizeof(queue_entry)
    std::uint64_t capacity;      //  16 entries in the ring, 1..queue_max_capacity
    std::uint64_t state;         //  24 (head << 32) | count, one atomic store per change
    std::uint32_t closed;        //  32 1 after close() or remove() (atomic)
    std::uint32_t not_empty;     //  36 futex word: bumped when an entry is added or the queue closes
    std::uint32_t not_full;      //  40 futex word: bumped when an entry is taken or the queue closes
    std::uint32_t pop_waiters;   //  44 processes waiting in pop (a waiter killed while waiting leaves it high:
    std::uint32_t push_waiters;  //  48 that only costs a spare wake-up)
    std::uint32_t pool_records;  //  52 records of the recycling pool, 0..queue_max_pool
    std::uint64_t pushed;        //  56 items pushed so far
    std::uint64_t popped;        //  64 items popped so far
    std::uint64_t reused;        //  72 segments handed out again from the pool
    std::uint64_t pool_created;  //  80 segments created for the pool
    std::uint32_t record_size;   //  88 sizeof(queue_pool_record)
    unsigned char reserved1[36]; //  92
    lock_area lock;              // 128 ndshm's lock (sync.hpp), guarding state, the ring and the pool
    unsigned char reserved2[64]; // 192
};
static_assert(sizeof(queue_control) == 256, "the queue control block is 256 bytes");

enum : std::uint32_t { entry_object = 1u << 0 };

/// One queued array or composite object: its segment name (NUL-terminated), dtype (uint8 for an
/// object), and the identity of the segment the pusher handed over: device and inode of its file, and
/// the creation time in its trailer (a file system may give a freed inode number to a new file). A name
/// removed and created again while queued is never taken for it: not popped, not unlinked. `pool` is
/// the index + 1 of the pool record of a recycled segment (0: not one), `pool_generation` that
/// record's generation when it was pushed.
struct queue_entry {
    char name[queue_name_room];
    std::uint32_t dtype; // ndshm::dtype as an integer
    std::uint32_t flags; // entry_object
    std::uint64_t dev;
    std::uint64_t ino;
    std::uint64_t created_ns;
    std::uint32_t pool;
    std::uint32_t pool_generation;
    std::uint64_t reserved;
};
static_assert(sizeof(queue_entry) == 304, "a queue entry is 304 bytes");

enum : std::uint32_t { pool_empty = 0, pool_free = 1, pool_held = 2, pool_queued = 3 };

/// Room for the name of a pooled segment: ndshm generates at most 30 characters.
inline constexpr std::size_t pool_name_room = 32;

/// One segment of the recycling pool.
struct queue_pool_record {
    std::uint32_t state;       //   0 pool_empty, pool_free, pool_held, pool_queued
    std::uint32_t generation;  //   4 bumped whenever the record is emptied: a cached mapping of an older
                               //     generation is of another segment
    std::uint64_t pid;         //   8 holder while held
    std::uint64_t start;       //  16 holder's start time
    std::uint64_t dev;         //  24 the segment's identity, as in queue_entry
    std::uint64_t ino;         //  32
    std::uint64_t created_ns;  //  40
    std::uint64_t bytes;       //  48 the segment's size (what the pool hands it out for)
    std::uint32_t layout;      //  56 bumped whenever its header or trailer is rewritten for another shape
    std::uint32_t reserved0;   //  60
    char name[pool_name_room]; // 64 NUL-terminated
    unsigned char reserved1[32];
};
static_assert(sizeof(queue_pool_record) == 128, "a pool record is 128 bytes");

/// Data bytes of a queue of `capacity` entries and `pool` pool records.
constexpr std::size_t queue_data_bytes(std::size_t capacity, std::size_t pool = 0) noexcept
{
    return sizeof(queue_control) + capacity * sizeof(queue_entry) + pool * sizeof(queue_pool_record);
}

/// The pool records a queue of `capacity` keeps by default: a producer filling one, the queue full,
/// and a consumer reading one.
constexpr std::size_t queue_default_pool(std::size_t capacity) noexcept
{
    return capacity + 2 < 1024 ? capacity + 2 : 1024;
}

inline std::uint64_t queue_pack(std::uint64_t head, std::uint64_t count) noexcept { return head << 32 | count; }
inline std::uint64_t queue_head(std::uint64_t state) noexcept { return state >> 32; }
inline std::uint64_t queue_count(std::uint64_t state) noexcept { return state & 0xffffffffu; }

/// True if `e` holds a usable segment name, a known dtype, and a file identity. Queue entries come
/// from shared memory: untrusted.
inline bool queue_entry_valid(const queue_entry& e, std::string& name, ndshm::dtype& type)
{
    if (e.dtype > static_cast<std::uint32_t>(ndshm::dtype::complex128) || e.ino == 0 ||
        (e.flags & ~entry_object) != 0) {
        return false;
    }
    if (!valid_segment_name(e.name, sizeof e.name, name)) {
        return false;
    }
    type = static_cast<ndshm::dtype>(e.dtype);
    return true;
}

} // namespace ndshm::detail

#endif
