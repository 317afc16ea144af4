/// @file detail/collection_index.hpp
/// A shared dictionary's hash index, in its table (collection_format.hpp): a power of two of slots,
/// each a record number + 1 or 0 for an empty slot. A key's record goes in the first empty slot from
/// its hash on (linear probing); a removal shifts the later records of its probe run back, so that no
/// slot needs a tombstone. Only the holder of the dict's lock uses it.
#ifndef NDSHM_DETAIL_COLLECTION_INDEX_HPP
#define NDSHM_DETAIL_COLLECTION_INDEX_HPP

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace ndshm::detail {

/// A view of the index of `count` slots at `slot`, in a table of `records` records.
struct collection_index {
    std::uint32_t* slot;
    std::size_t count;
    std::size_t records;

    /// The first value of the probe run of `hash` (a record number + 1) for which `match(value)` is
    /// true, or 0 if an empty slot ends the run first. `full` is set if the run found no empty slot at
    /// all (a full index: corrupt, since it has twice as many slots as entries).
    template <class Match>
    std::uint32_t find(std::uint64_t hash, Match&& match, bool& full) const
    {
        const std::size_t mask = count - 1;
        std::size_t i = static_cast<std::size_t>(hash) & mask;
        for (std::size_t n = 0; n < count; ++n, i = (i + 1) & mask) {
            const std::uint32_t v = slot[i];
            if (v == 0) {
                return 0;
            }
            if (match(v)) {
                return v;
            }
        }
        full = true;
        return 0;
    }

    /// Puts record `r`, whose key hashes to `hash`, in the first empty slot of its probe run.
    void insert(std::uint32_t r, std::uint64_t hash) noexcept
    {
        const std::size_t mask = count - 1;
        std::size_t i = static_cast<std::size_t>(hash) & mask;
        for (std::size_t n = 0; n < count; ++n, i = (i + 1) & mask) {
            if (slot[i] == 0) {
                slot[i] = r + 1;
                return;
            }
        }
    }

    /// Takes record `r`, whose key hashes to `hash`, out of the index. `hash_of(q)` is the key hash of
    /// record q, for the records that move back.
    template <class HashOf>
    void erase(std::uint32_t r, std::uint64_t hash, HashOf&& hash_of) noexcept
    {
        const std::size_t mask = count - 1;
        std::size_t i = static_cast<std::size_t>(hash) & mask;
        std::size_t n = 0;
        for (; n < count && slot[i] != r + 1; ++n, i = (i + 1) & mask) {
            if (slot[i] == 0) {
                return;
            }
        }
        if (n == count) {
            return;
        }
        // Backward-shift deletion: later entries of the probe run move up, so no tombstone is needed.
        std::size_t j = i;
        for (n = 0; n < count; ++n) {
            j = (j + 1) & mask;
            const std::uint32_t v = slot[j];
            if (v == 0 || v > records) {
                break;
            }
            const std::size_t home = static_cast<std::size_t>(hash_of(v - 1)) & mask;
            const bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
            if (!stays) {
                slot[i] = v;
                i = j;
            }
        }
        slot[i] = 0;
    }

    /// Empties every slot.
    void clear() noexcept { std::memset(slot, 0, count * sizeof(std::uint32_t)); }
};

} // namespace ndshm::detail

#endif
