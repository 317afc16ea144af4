/// @file detail/channel_format.hpp
/// The layout of a loan/publish channel's segment (channel.hpp) and the checks applied to it.
///
/// A channel is a `.npy` of shape (slots, *slot_shape): the slots are its data, so NumPy sees every
/// slot. ndshm's trailer (kind `kind_channel`) follows the data, then a 256-byte control block, one
/// 24-byte record per slot (state, holder pid and start time) and a ring of published slot indices
/// (u32 each).
#ifndef NDSHM_DETAIL_CHANNEL_FORMAT_HPP
#define NDSHM_DETAIL_CHANNEL_FORMAT_HPP

#include <cstddef>
#include <cstdint>

#include "sync.hpp"

namespace ndshm::detail {

inline constexpr char channel_magic[8] = {'N', 'D', 'S', 'H', 'M', 'C', 'H', '2'};

enum : std::uint32_t { slot_free = 0, slot_loaned = 1, slot_ready = 2, slot_received = 3 };

/// The channel's control block, after the trailer. Fixed-size fields; the slot records and the ring
/// of published slot indices follow it.
struct channel_control {
    char magic[8];            //   0 "NDSHMCH2"
    std::uint32_t slots;      //   8 number of slots (== shape[0] of the .npy)
    std::uint32_t closed;     //  12 1 once closed
    std::uint64_t slot_bytes; //  16 bytes of one slot
    std::uint64_t head;       //  24 ring: published slots are ring[head % slots .. tail % slots)
    std::uint64_t tail;       //  32
    std::uint64_t published;  //  40 counters, for inspection
    std::uint64_t reclaimed;  //  48 slots taken back from dead processes
    std::uint32_t freed;      //  56 futex word: bumped when a slot becomes free or the channel closes
    std::uint32_t posted;     //  60 futex word: bumped when a slot is published or the channel closes
    lock_area lock;           //  64 ndshm's lock (sync.hpp), guarding the ring and the slot records
    unsigned char reserved[128];
};
static_assert(sizeof(channel_control) == 256, "the channel control block is 256 bytes");

/// Who holds a slot, and in which state. Taking a slot (under the lock) writes the holder, then the
/// state; its holder releases it without the lock, with one store of slot_free. Only the holder's
/// death (judged by the positive-evidence rule) lets another process free a held slot.
struct slot_record {
    std::uint32_t state;
    std::uint32_t reserved;
    std::uint64_t pid;   // holder while loaned or received
    std::uint64_t start; // holder's start time, so that a reused pid is not taken for the holder
};
static_assert(sizeof(slot_record) == 24, "slot records are 24 bytes");

inline std::size_t channel_extra_bytes(std::size_t slots) noexcept
{
    return sizeof(channel_control) + slots * (sizeof(slot_record) + sizeof(std::uint32_t));
}

} // namespace ndshm::detail

#endif
