/// @file detail/segment_name.hpp
/// What a segment name may hold, [A-Za-z0-9._-] and no leading '.', checked on names that a queue
/// entry or a pool record (queue_format.hpp) or a container's record (collection_format.hpp) holds in
/// shared memory: untrusted bytes.
#ifndef NDSHM_DETAIL_SEGMENT_NAME_HPP
#define NDSHM_DETAIL_SEGMENT_NAME_HPP

#include <cstddef>
#include <cstring>
#include <string>

namespace ndshm::detail {

/// True for a character that segment names may hold: [A-Za-z0-9._-].
constexpr bool segment_name_char(char c) noexcept
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-';
}

/// True if the `room` bytes at `s` hold a usable segment name: 1 to room-1 characters of
/// [A-Za-z0-9._-], NUL-terminated, not starting with '.'. Untrusted bytes from shared memory.
inline bool valid_segment_name(const char* s, std::size_t room, std::string& name)
{
    const void* nul = std::memchr(s, '\0', room);
    if (nul == nullptr || nul == s || s[0] == '.') {
        return false;
    }
    const auto n = static_cast<std::size_t>(static_cast<const char*>(nul) - s);
    for (std::size_t i = 0; i < n; ++i) {
        if (!segment_name_char(s[i])) {
            return false;
        }
    }
    name.assign(s, n);
    return true;
}

} // namespace ndshm::detail

#endif
