/// @file detail/mix.hpp
/// MurmurHash3's 64-bit finaliser, the one bit mixer of ndshm: the lock's check value over its
/// holder record (sync.hpp) and the store's segment names from a file's identity (store_impl.hpp).
#ifndef NDSHM_DETAIL_MIX_HPP
#define NDSHM_DETAIL_MIX_HPP

#include <cstdint>

namespace ndshm::detail {

/// Every input bit affects every output bit.
inline std::uint64_t mix64(std::uint64_t x) noexcept
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb3fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

} // namespace ndshm::detail

#endif
