/// @file detail/segment_trailer.hpp
/// ndshm's trailer (detail/trailer.hpp) in a segment: where it lies after the data the `.npy` header
/// describes, writing it into a new segment, checking it against the header, finding it in a mapping,
/// and naming the process that owns the segment.
#ifndef NDSHM_DETAIL_SEGMENT_TRAILER_HPP
#define NDSHM_DETAIL_SEGMENT_TRAILER_HPP

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "../error.hpp"
#include "config.hpp"
#include "liveness.hpp"
#include "mapping.hpp"
#include "npy.hpp"
#include "sync.hpp"
#include "sys.hpp"
#include "trailer.hpp"

namespace ndshm::detail {

/// Fills in the trailer of a freshly created segment (state: writing).
NDSHM_DECL trailer* write_trailer(mapping& m, std::size_t offset, std::uint32_t kind, std::size_t data_offset,
                                  std::size_t data_bytes) noexcept;

/// Checks a copy of ndshm's trailer against the .npy header. Throws format_error.
NDSHM_DECL void check_trailer(const trailer& t, const npy_info& info, const std::string& name, const std::string& op);

/// Offset of ndshm's trailer in a segment of `size` bytes holding `info`'s data, or SIZE_MAX if no
/// trailer fits there.
inline std::size_t trailer_offset_in(const npy_info& info, std::size_t size) noexcept
{
    const std::size_t off = trailer_offset(info.data_offset + info.nbytes);
    return off > size || size - off < sizeof(trailer) ? SIZE_MAX : off;
}

/// Reads and validates ndshm's trailer in a mapped segment; nullptr for a foreign segment.
NDSHM_DECL trailer* find_trailer(const mapping& m, const npy_info& info, const std::string& op);

/// Records `owner` as the segment's owner in its trailer, which is what `ndshm gc` checks to decide
/// whether the owner is dead. Each field is stored atomically; a reader that sees a pair that names no
/// live process should read it again before acting on it, since a transfer may be under way.
inline void set_trailer_owner(trailer& t, process_identity owner) noexcept
{
    __atomic_store_n(&t.creator_start, owner.start, __ATOMIC_RELEASE);
    __atomic_store_n(&t.creator_pid, owner.pid, __ATOMIC_RELEASE);
}

/// The process recorded as the owner of segment `m` in its trailer (none for a segment without one).
inline process_identity trailer_owner(const mapping& m) noexcept
{
    process_identity p;
    if (const trailer* t = m.get_trailer()) {
        p.pid = __atomic_load_n(&t->creator_pid, __ATOMIC_ACQUIRE);
        p.start = __atomic_load_n(&t->creator_start, __ATOMIC_ACQUIRE);
    }
    return p;
}

/// Transfers ownership of a segment to this process: the trailer names this process as its owner (for
/// gc), the session registers the name (free_session), and the last handle of `m` in this process
/// unlinks it. `m` must be a writable mapping of an ndshm segment.
inline void take_ownership(mapping& m)
{
    if (m.get_trailer() != nullptr && m.writable()) {
        set_trailer_owner(*m.get_trailer(), this_process());
    }
    m.own();
}

} // namespace ndshm::detail

#if NDSHM_DEFINITIONS
namespace ndshm::detail {

trailer* write_trailer(mapping& m, std::size_t offset, std::uint32_t kind, std::size_t data_offset,
                       std::size_t data_bytes) noexcept
{
    auto* t = reinterpret_cast<trailer*>(m.base() + offset);
    const process_identity me = this_process();
    std::memset(t, 0, sizeof *t);
    t->version = trailer_version;
    t->size = sizeof(trailer);
    t->kind = kind;
    t->state = state_writing;
    t->uid = static_cast<std::uint32_t>(current_uid());
    t->creator_pid = me.pid;
    t->creator_start = me.start;
    t->data_offset = data_offset;
    t->data_bytes = data_bytes;
    t->created_ns = static_cast<std::uint64_t>(now_ns());
    // The per-array lock (lock.hpp) is set up here, before publication, so that attachers never race
    // to initialise it.
    init_lock(t->lock);
    t->flags |= flag_lock;
    // The magic goes last: whoever reads a trailer (gc, inspect) while this process runs or after it
    // died here finds either no trailer or a whole one that names its creator, never a magic with a
    // creator of pid 0 that nobody can judge.
    std::atomic_thread_fence(std::memory_order_release);
    std::memcpy(t->magic, trailer_magic, sizeof trailer_magic);
    m.set_trailer(t);
    return t;
}

void check_trailer(const trailer& t, const npy_info& info, const std::string& name, const std::string& op)
{
    const auto bad = [&](const std::string& why, const std::string& fix, errc code = errc::corrupt_trailer) {
        raise<format_error>(op, name, why, fix, make_error_code(code));
    };
    if (!known_trailer_format(t)) {
        bad("trailer format version " + std::to_string(t.version) + " is not supported (this ndshm reads version " +
                std::to_string(trailer_version) + ")",
            "use the ndshm version that made the segment", errc::unsupported_format);
    }
    if (t.data_offset != info.data_offset || t.data_bytes != info.nbytes) {
        bad("corrupt segment: the trailer disagrees with the .npy header about the data",
            "the segment was damaged; recreate it");
    }
    if (t.state != state_ready) {
        bad("the segment is unfinished (trailer state is not ready)", "retry later or remove it with `ndshm gc`",
            errc::unfinished);
    }
}

trailer* find_trailer(const mapping& m, const npy_info& info, const std::string& op)
{
    const std::size_t off = trailer_offset_in(info, m.size());
    if (off == SIZE_MAX) {
        return nullptr;
    }
    auto* t = reinterpret_cast<trailer*>(m.base() + off);
    if (!has_trailer_magic(*t)) {
        return nullptr;
    }
    trailer copy;
    std::memcpy(&copy, t, sizeof copy);
    copy.state = load_acquire(t->state);
    check_trailer(copy, info, m.name(), op);
    return t;
}

} // namespace ndshm::detail
#endif // NDSHM_DEFINITIONS

#endif
