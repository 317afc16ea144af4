/// @file detail/region_cache.hpp
/// Attaching a segment this process maps already shares its mapping: the regions mapped, by file
/// identity, with what attach parsed of each.
#ifndef NDSHM_DETAIL_REGION_CACHE_HPP
#define NDSHM_DETAIL_REGION_CACHE_HPP

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>

#include "config.hpp"
#include "mapping.hpp"
#include "npy.hpp"
#include "segment_location.hpp"

namespace ndshm::detail {

/// What attach learned of a segment: its array, its kind (0: foreign, no trailer) and where its
/// trailer is (SIZE_MAX: none).
struct segment_layout {
    npy_info info;
    std::uint32_t kind = 0;
    std::size_t trailer_off = SIZE_MAX;
};

/// The regions of segments this process has mapped, by file identity and writability, with what
/// attach parsed of each: attaching a segment again while any handle of it is alive shares its
/// mapping (an open and an fstat, to resolve the name, and no read, no mmap). A file's identity cannot
/// be reused while a region maps it, and a region found is used only if the file still has its size
/// and its header still has the bytes that were parsed (reshape rewrites it).
class region_cache {
public:
    /// The live region of file `id` (mapped writable or not) of `size` bytes (SIZE_MAX: of any size),
    /// and its layout; null if there is none.
    NDSHM_DECL std::shared_ptr<const region> find(file_id id, bool writable, std::size_t size, segment_layout& layout);

    /// Remembers `r`, a mapping of file `id`, its layout (`info`, `kind`, `trailer_off`) and the header
    /// it was parsed from (its first `header_size` bytes: the dict's closing brace is among them, since
    /// the header parsed). What follows the dict is padding, so any change of the dict (a reshape)
    /// changes one of the bytes up to and including the old dict's brace.
    NDSHM_DECL void remember(file_id id, bool writable, const std::shared_ptr<const region>& r, const npy_info& info,
                             std::uint32_t kind, std::size_t trailer_off, const unsigned char* header,
                             std::size_t header_size);

private:
    struct key {
        std::uint64_t dev, ino;
        bool writable;
        bool operator<(const key& o) const noexcept
        {
            return std::tie(dev, ino, writable) < std::tie(o.dev, o.ino, o.writable);
        }
    };
    struct entry {
        std::weak_ptr<const region> memory;
        segment_layout layout;
        std::array<unsigned char, 256> header; ///< the header up to the end of its dict
        std::size_t header_size = 0;
    };
    std::mutex m_mutex;
    std::map<key, entry> m_entries;
    std::size_t m_sweep_at = 64;
};

NDSHM_DECL region_cache& attached_regions();

/// Lets later attaches of the segment of `m` (published, holding `info`'s array, of `kind`) share its
/// mapping. `header` is the segment's header as it was parsed (its first info.data_offset bytes; by
/// default those of the mapping).
NDSHM_DECL void remember_layout(const mapping& m, const npy_info& info, std::uint32_t kind,
                                const unsigned char* header = nullptr);

} // namespace ndshm::detail

#if NDSHM_DEFINITIONS
namespace ndshm::detail {

std::shared_ptr<const region> region_cache::find(file_id id, bool writable, std::size_t size, segment_layout& layout)
{
    std::lock_guard<std::mutex> g(m_mutex);
    const auto it = m_entries.find(key{id.dev, id.ino, writable});
    if (it == m_entries.end()) {
        return nullptr;
    }
    auto r = it->second.memory.lock();
    const entry& e = it->second;
    if (!r || (size != SIZE_MAX && r->size() != size) || std::memcmp(r->base(), e.header.data(), e.header_size) != 0) {
        return nullptr; // stale: the attach that follows overwrites the entry (or a sweep drops it)
    }
    layout = it->second.layout;
    return r;
}

void region_cache::remember(file_id id, bool writable, const std::shared_ptr<const region>& r, const npy_info& info,
                            std::uint32_t kind, std::size_t trailer_off, const unsigned char* header,
                            std::size_t header_size)
{
    const auto* brace = static_cast<const unsigned char*>(std::memchr(header, '}', header_size));
    const std::size_t kept = brace == nullptr ? SIZE_MAX : static_cast<std::size_t>(brace - header) + 1;
    if (!id.known() || kept > std::tuple_size<decltype(entry::header)>::value) {
        return; // a dict longer than ndshm writes (dozens of dimensions) is read again each time
    }
    std::lock_guard<std::mutex> g(m_mutex);
    if (m_entries.size() >= m_sweep_at) { // drop the entries of regions that are gone
        for (auto it = m_entries.begin(); it != m_entries.end();) {
            it = it->second.memory.expired() ? m_entries.erase(it) : std::next(it);
        }
        m_sweep_at = std::max<std::size_t>(64, 2 * m_entries.size());
    }
    // Assigned in place: attaching the same segment again reuses the entry and its shape's storage.
    entry& e = m_entries[key{id.dev, id.ino, writable}];
    e.memory = r;
    e.layout.info = info;
    e.layout.kind = kind;
    e.layout.trailer_off = trailer_off;
    std::memcpy(e.header.data(), header, kept);
    e.header_size = kept;
}

region_cache& attached_regions()
{
    static region_cache c;
    return c;
}

void remember_layout(const mapping& m, const npy_info& info, std::uint32_t kind, const unsigned char* header)
{
    const std::size_t trailer_off = m.get_trailer() != nullptr
                                        ? static_cast<std::size_t>(reinterpret_cast<unsigned char*>(m.get_trailer()) -
                                                                   m.base())
                                        : SIZE_MAX;
    attached_regions().remember(m.id(), m.writable(), m.memory(), info, kind, trailer_off,
                                header != nullptr ? header : m.base(), info.data_offset);
}

} // namespace ndshm::detail
#endif // NDSHM_DEFINITIONS

#endif
