// libFuzzer target: the classification that inspect.hpp (and so `ndshm ls`, `info` and `gc`) applies
// to the bytes of any segment: .npy header, unfinished magic, trailer and its kind. It must never
// throw, never read outside the segment, and say something consistent about any input.
#include <ndshm/inspect.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {

void check(bool ok)
{
    if (!ok) {
        std::abort();
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    const std::vector<unsigned char> bytes(data, data + size);
    ndshm::segment_info s;
    s.name = "ndshm_fuzz";
    s.uid = static_cast<std::uint32_t>(::geteuid());
    ndshm::detail::analyze_segment(s, bytes.size(), [&](std::size_t off, void* out, std::size_t n) -> std::size_t {
        check(off <= bytes.size());
        const std::size_t got = std::min(n, bytes.size() - off);
        std::memcpy(out, bytes.data() + off, got);
        return got;
    });
    check(s.bytes == size);
    switch (s.kind) {
    case ndshm::segment_kind::array:
        check(s.has_header && s.trailer && s.trailer->ready && s.problem.empty());
        check(s.data_offset <= size && s.data_bytes <= size - s.data_offset);
        break;
    case ndshm::segment_kind::object:
    case ndshm::segment_kind::channel:
    case ndshm::segment_kind::queue:
        check(s.trailer && s.trailer->ready && s.problem.empty());
        break;
    case ndshm::segment_kind::foreign_npy:
        check(s.has_header && !s.trailer && s.problem.empty());
        break;
    case ndshm::segment_kind::unfinished:
    case ndshm::segment_kind::corrupt:
        check(!s.problem.empty());
        break;
    case ndshm::segment_kind::other:
        check(!s.trailer); // a file of no kind ndshm knows
        break;
    case ndshm::segment_kind::unreadable:
        std::abort(); // only for files that cannot be opened or read
    }
    // The tool's summary of a queue, channel or object reads more of the untrusted bytes.
    ndshm::detail::summarize_contents(s, [&](std::uint64_t off, void* out, std::size_t n) -> std::size_t {
        if (off > bytes.size()) {
            return 0;
        }
        const std::size_t got = std::min<std::size_t>(n, bytes.size() - static_cast<std::size_t>(off));
        std::memcpy(out, bytes.data() + off, got);
        return got;
    });
    if (s.trailer) {
        check(s.trailer->offset <= size && size - s.trailer->offset >= 256);
    }
    // gc's rule on it: without a known dead creator or a known absence of users, nothing is garbage.
    check(ndshm::gc_reason(s).empty());
    return 0;
}
