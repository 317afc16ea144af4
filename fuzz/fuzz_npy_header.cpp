// libFuzzer target: detail::parse_npy, the parser of the .npy header at the start of every segment and
// file. Any input must either parse into an array description that fits the bytes, or be refused
// with ndshm::format_error; a header that parses must survive a write/parse round trip unchanged.
#include <ndshm/detail/npy.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
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
    using namespace ndshm::detail;
    // An exact-size heap copy: AddressSanitizer catches any read past its end.
    const std::vector<unsigned char> bytes(data, data + size);
    try {
        const npy_info info = parse_npy(bytes.data(), bytes.size(), "fuzz");
        check(info.data_offset <= size && info.nbytes <= size - info.data_offset);
        std::size_t n = 1;
        for (const std::size_t d : info.shape) {
            n *= d;
        }
        check(n == info.size && info.size * ndshm::itemsize(info.type) == info.nbytes);
        // Only a prefix in memory, the rest of the file elsewhere: the parser must stay in the prefix.
        const std::size_t head = info.data_offset;
        const std::vector<unsigned char> prefix(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(head));
        const npy_info again = parse_npy(prefix.data(), prefix.size(), "fuzz", size);
        check(again.shape == info.shape && again.type == info.type && again.data_offset == info.data_offset);
        // What ndshm writes for the same array parses back to the same array.
        std::vector<unsigned char> out(4096);
        if (write_npy_header(out.data(), out.size(), info.type, info.shape, info.fortran_order)) {
            out[0] = static_cast<unsigned char>(npy_magic[0]);
            const npy_info back = parse_npy(out.data(), out.size(), "fuzz", out.size() + info.nbytes);
            check(back.shape == info.shape && back.type == info.type && back.fortran_order == info.fortran_order &&
                  back.data_offset == 4096);
        }
    } catch (const ndshm::format_error&) {
        // refused: fine
    }
    return 0;
}
