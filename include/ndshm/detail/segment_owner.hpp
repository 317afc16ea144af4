/// @file detail/segment_owner.hpp
/// Reading the owner that a segment's trailer records (set_trailer_owner, segment_impl.hpp, writes it):
/// the process whose death lets `ndshm gc` reclaim the segment. A queue or a container hands the
/// segments it takes over to its own owner this way.
#ifndef NDSHM_DETAIL_SEGMENT_OWNER_HPP
#define NDSHM_DETAIL_SEGMENT_OWNER_HPP

#include "segment_impl.hpp"
#include "trailer.hpp"

namespace ndshm::detail {

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

} // namespace ndshm::detail

#endif
