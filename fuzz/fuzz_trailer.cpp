// libFuzzer target: ndshm's trailer, located after the data that a .npy header describes and checked
// against it (detail::find_trailer, detail::check_trailer) on a real mapping of the input.
//
// Input: byte 0 chooses how the array is described. Even: the rest is a whole segment whose own .npy
// header must parse. Odd: bytes 1-2 and 3-4 are the data offset and length (little-endian), so that
// the trailer checks are reached without a valid header; the rest is the segment.
#include <ndshm/detail/npy.hpp>
#include <ndshm/detail/segment_impl.hpp>
#include <ndshm/detail/trailer.hpp>

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    using namespace ndshm::detail;
    if (size < 5) {
        return 0;
    }
    const bool described = (data[0] & 1) != 0;
    const std::size_t skip = described ? 5 : 1;
    const std::size_t n = size - skip;
    if (n == 0) {
        return 0;
    }
    // A real mapping, as attach has: its end is a page boundary or ASan's redzone of a guard page.
    void* p = ::mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        return 0;
    }
    std::memcpy(p, data + skip, n);
    // The mapping object unmaps it; it owns no name, so it never unlinks anything.
    const auto m = std::make_shared<mapping>(location{"", "fuzz"}, static_cast<unsigned char*>(p), n, false);
    try {
        npy_info info;
        if (described) {
            info.data_offset = std::size_t(data[1]) | std::size_t(data[2]) << 8;
            info.nbytes = std::size_t(data[3]) | std::size_t(data[4]) << 8;
        } else {
            info = parse_npy(m->base(), m->size(), "fuzz");
        }
        const trailer* t = find_trailer(*m, info, "fuzz");
        if (t != nullptr) {
            const auto* b = reinterpret_cast<const unsigned char*>(t);
            if (b < m->base() || b + sizeof(trailer) > m->base() + m->size() ||
                std::memcmp(t->magic, trailer_magic, sizeof trailer_magic) != 0 || t->state != state_ready ||
                t->data_offset != info.data_offset || t->data_bytes != info.nbytes) {
                std::abort();
            }
        }
    } catch (const ndshm::format_error&) {
        // refused: fine
    }
    return 0;
}
