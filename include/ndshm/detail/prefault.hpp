/// @file detail/prefault.hpp
/// Mapping the pages of a region in one call instead of one page fault each: for segments that are
/// about to be written whole, and for arrays that are about to be read.
#ifndef NDSHM_DETAIL_PREFAULT_HPP
#define NDSHM_DETAIL_PREFAULT_HPP

#include <cstddef>

#include "sys.hpp"

#if defined(MADV_POPULATE_WRITE)
#define NDSHM_MADV_POPULATE_READ MADV_POPULATE_READ
#define NDSHM_MADV_POPULATE_WRITE MADV_POPULATE_WRITE
#elif defined(__linux__)
#define NDSHM_MADV_POPULATE_READ 22 // Linux 5.14
#define NDSHM_MADV_POPULATE_WRITE 23
#endif

namespace ndshm::detail {

/// Asks the kernel to map every page of [p, p + n) in one call (Linux 5.14 and later), for writing or
/// for reading. A segment that is about to be written whole then takes no page fault per page, which
/// on a virtual machine more than halves the cost of filling fresh memory. Read-populating costs what
/// MAP_POPULATE does; write-populating costs over twice as much (no fault-around), and tmpfs pages need
/// no write fault later anyway, so what is only read is read-populated. Advisory: where the kernel
/// cannot, pages fault in on first touch as usual.
inline void prefault(void* p, std::size_t n, bool write) noexcept
{
#ifdef NDSHM_MADV_POPULATE_WRITE
    if (n != 0) {
        (void)sys().madvise(p, n, write ? NDSHM_MADV_POPULATE_WRITE : NDSHM_MADV_POPULATE_READ);
    }
#else
    (void)p;
    (void)n;
    (void)write;
#endif
}

} // namespace ndshm::detail

#undef NDSHM_MADV_POPULATE_READ
#undef NDSHM_MADV_POPULATE_WRITE

#endif
