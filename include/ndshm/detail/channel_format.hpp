/// @file detail/channel_format.hpp
/// The layout of a loan/publish channel's segment (channel.hpp) and the checks applied to it.
///
/// A channel is a `.npy` of shape (slots, *slot_shape): the slots are its data, so NumPy sees every
/// slot. ndshm's trailer (kind `kind_channel`) follows the data, then a 512-byte control block, one
/// 32-byte record per slot (state, holder pid and start time, publication number) and a ring of
/// published slot indices (u32 each).
///
/// Producers and consumers have a lock each, on cache lines of their own, so that a producer and a
/// consumer never wait for each other and never pull each other's lock into their cache:
/// - the producers' lock guards loans (free -> loaned) and publication: publication n writes
///   ring[n % slots], the slot's record (seq = n, state ready), then tail = n + 1;
/// - the consumers' lock guards receipt: the slot at ring[head % slots] must be ready with seq == head;
///   head = head + 1, then the record (holder, state received).
/// A holder releases its slot without a lock, with one store of slot_free. A process killed between
/// two of those steps leaves a slot that is ready but outside [head, tail) in publication numbers
/// (seq >= tail: published halfway; seq < head: received halfway): a loan that finds no free slot
/// frees such slots, and slots whose holder is dead, while it holds both locks (producers' first).
#ifndef NDSHM_DETAIL_CHANNEL_FORMAT_HPP
#define NDSHM_DETAIL_CHANNEL_FORMAT_HPP

#include <cstddef>
#include <cstdint>

#include "sync.hpp"

namespace ndshm::detail {

inline constexpr char channel_magic[8] = {'N', 'D', 'S', 'H', 'M', 'C', 'H', '3'};
/// The most slots a channel has.
inline constexpr std::size_t channel_max_slots = 65536;

enum : std::uint32_t { slot_free = 0, slot_loaned = 1, slot_ready = 2, slot_received = 3 };

/// The channel's control block, after the trailer. Fixed-size fields, one cache line per side; the
/// slot records and the ring of published slot indices follow it.
struct channel_control {
    // Written at creation (and rarely after).
    char magic[8];               //   0 "NDSHMCH3"
    std::uint32_t slots;         //   8 number of slots (== shape[0] of the .npy)
    std::uint32_t closed;        //  12 1 once closed
    std::uint64_t slot_bytes;    //  16 bytes of one slot
    std::uint64_t reclaimed;     //  24 slots taken back from dead processes
    unsigned char reserved0[32]; //  32
    // The producers' side.
    std::uint64_t tail;          //  64 the next publication number
    std::uint64_t published;     //  72 slots published so far
    std::uint32_t posted;        //  80 event word (sync.hpp): signalled on publication and close
    unsigned char reserved1[44]; //  84
    // The consumers' side.
    std::uint64_t head;          // 128 the next publication number to receive
    std::uint64_t received;      // 136 slots received so far
    std::uint32_t freed;         // 144 event word: signalled when a slot becomes free, and on close
    unsigned char reserved2[44]; // 148
    lock_area producer_lock;     // 192 ndshm's lock (sync.hpp): loans, the ring's next cell, tail
    lock_area consumer_lock;     // 256 ndshm's lock: head and receipt
    unsigned char reserved3[192];
};
static_assert(sizeof(channel_control) == 512, "the channel control block is 512 bytes");

/// Who holds a slot, in which state, and (once published) its publication number. Taking a slot under
/// a lock writes the holder, then the state; its holder releases it without a lock, with one store of
/// slot_free. Only the holder's death (judged by the positive-evidence rule) lets another process free
/// a held slot.
struct slot_record {
    std::uint32_t state;
    std::uint32_t reserved;
    std::uint64_t pid;   // holder while loaned or received
    std::uint64_t start; // holder's start time, so that a reused pid is not taken for the holder
    std::uint64_t seq;   // publication number, from publication until the slot is free again
};
static_assert(sizeof(slot_record) == 32, "slot records are 32 bytes");

inline std::size_t channel_extra_bytes(std::size_t slots) noexcept
{
    return sizeof(channel_control) + slots * (sizeof(slot_record) + sizeof(std::uint32_t));
}

} // namespace ndshm::detail

#endif
