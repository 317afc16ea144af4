/// @file detail/npy.hpp
/// Writing and parsing the `.npy` header. The parser treats its input as hostile: every length,
/// number and offset is checked against the bytes actually present before it is used.
#ifndef NDSHM_DETAIL_NPY_HPP
#define NDSHM_DETAIL_NPY_HPP

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "../dtype.hpp"
#include "../error.hpp"
#include "config.hpp"

namespace ndshm::detail {

inline constexpr char npy_magic[6] = {'\x93', 'N', 'U', 'M', 'P', 'Y'};
inline constexpr std::size_t npy_max_ndim = 64;

/// What a `.npy` header says about the array that follows it.
struct npy_info {
    ndshm::dtype type = dtype::float64;
    std::vector<std::size_t> shape;
    bool fortran_order = false;
    std::size_t data_offset = 0; ///< first byte of the data
    std::size_t size = 1;        ///< number of elements
    std::size_t nbytes = 0;      ///< size * itemsize
};

/// Bytes before the header dict: the magic, the version (2 bytes) and the dict's length, 2 bytes for
/// format version 1, 4 for versions 2 and 3.
constexpr std::size_t npy_prefix_bytes(unsigned major) noexcept { return major >= 2 ? 12 : 10; }

/// The format version a header ending at `data_offset` needs: 1 while the dict's length fits 16 bits,
/// else 2.
constexpr unsigned npy_version_for(std::size_t data_offset) noexcept
{
    return data_offset - npy_prefix_bytes(1) > 0xFFFF ? 2 : 1;
}

/// The end of the header (the first data byte) of a `.npy` whose first bytes are `head`: the prefix
/// (see npy_prefix_bytes) and the dict's length stored in it, little-endian. `head` holds at least 10
/// bytes, 12 for version 2 and later. The one place that decodes the length.
inline std::size_t npy_header_end(const unsigned char* head) noexcept
{
    const std::size_t prefix = npy_prefix_bytes(head[6]);
    std::size_t hlen = 0;
    for (std::size_t i = 8; i < prefix; ++i) {
        hlen |= static_cast<std::size_t>(head[i]) << (8 * (i - 8));
    }
    return prefix + hlen;
}

/// Bytes of a segment or file read to find its `.npy` header: enough for any header ndshm accepts.
inline constexpr std::size_t head_limit = 65536 + 12;

/// How many bytes from the start of a `.npy` of `total` bytes hold its whole header (at most
/// head_limit), told from its first `got` bytes at `head`; `got` itself if they are fewer than 12.
inline std::size_t npy_header_bytes(const unsigned char* head, std::size_t got, std::size_t total) noexcept
{
    return got < 12 ? got : std::min({total, head_limit, npy_header_end(head)});
}

/// True when the first six bytes are all zero: a segment whose creator has not published it yet. (A
/// header is written with the magic's first byte 0, and that byte is stored last: see
/// write_npy_header.)
inline bool unpublished(const unsigned char* head, std::size_t size) noexcept
{
    for (std::size_t i = 0; i < std::min<std::size_t>(size, sizeof npy_magic); ++i) {
        if (head[i] != 0 && (i == 0 || head[i] != static_cast<unsigned char>(npy_magic[i]))) {
            return false;
        }
    }
    return true;
}

/// Number of elements of `shape`, or false if the product (times itemsize) overflows.
inline bool checked_nbytes(const std::vector<std::size_t>& shape, std::size_t item, std::size_t& size,
                           std::size_t& nbytes) noexcept
{
    std::size_t n = 1;
    for (std::size_t d : shape) {
        if (d != 0 && n > std::numeric_limits<std::size_t>::max() / d) {
            return false;
        }
        n *= d;
    }
    if (n != 0 && item > std::numeric_limits<std::size_t>::max() / n) {
        return false;
    }
    size = n;
    nbytes = n * item;
    return true;
}

/// The header dict text, as NumPy writes it: keys in order descr, fortran_order, shape.
NDSHM_DECL std::string npy_dict(dtype t, const std::vector<std::size_t>& shape, bool fortran_order);

/// Writes a complete header into `out[0, data_offset)`, padded with spaces and a final newline so
/// that the data starts at `data_offset`. Format 1.0, or 2.0 when the header does not fit 16 bits.
/// The magic's first byte is left 0: the caller publishes the segment by storing it last.
/// Returns false if the dict does not fit.
NDSHM_DECL bool write_npy_header(unsigned char* out, std::size_t data_offset, dtype t,
                                 const std::vector<std::size_t>& shape, bool fortran_order) noexcept;

/// Parses the dict of a `.npy` header. Throws format_error naming `name` and the fault.
class npy_dict_parser {
public:
    npy_dict_parser(std::string_view text, const std::string& name) : m_s(text), m_name(name) {}

    NDSHM_DECL npy_info parse();

private:
    [[noreturn]] NDSHM_DECL void fail(const std::string& why) const;
    /// A valid .npy whose content ndshm does not support.
    [[noreturn]] NDSHM_DECL void unsupported(const std::string& why, const std::string& fix) const;
    char peek() const noexcept { return m_i < m_s.size() ? m_s[m_i] : '\0'; }
    void ws() noexcept
    {
        while (m_i < m_s.size() && (m_s[m_i] == ' ' || m_s[m_i] == '\t' || m_s[m_i] == '\n' || m_s[m_i] == '\r')) {
            ++m_i;
        }
    }
    NDSHM_DECL void expect(char c);
    NDSHM_DECL std::string_view string_literal(const char* what);
    NDSHM_DECL bool boolean();
    NDSHM_DECL std::vector<std::size_t> tuple();
    NDSHM_DECL dtype descr(std::string_view d);

    std::string_view m_s;
    const std::string& m_name;
    std::size_t m_i = 0;
};

/// Throws dtype_mismatch: the `holder` ("segment", "file") `name` holds `found`, not `want` as
/// requested. The fix: to `verb` ("attach", "read") it with the element type for `found`, then `more`.
[[noreturn, gnu::cold]] NDSHM_DECL void raise_dtype_mismatch(const std::string& op, const std::string& name,
                                                             const char* holder, dtype found, dtype want,
                                                             const char* verb, const char* more, std::error_code code);

/// Parses a complete `.npy` header at the start of `bytes[0, size)`. Checks magic, version, header
/// length, the dict, and that the data it promises lies inside `total` bytes (the whole file or
/// segment, of which `bytes` may hold only the first `size`). Throws format_error.
NDSHM_DECL npy_info parse_npy(const unsigned char* bytes, std::size_t size, const std::string& name,
                              std::size_t total = SIZE_MAX);

} // namespace ndshm::detail

#if NDSHM_DEFINITIONS
namespace ndshm::detail {

std::string npy_dict(dtype t, const std::vector<std::size_t>& shape, bool fortran_order)
{
    std::string s = "{'descr': '";
    s += dtype_descr(t);
    s += "', 'fortran_order': ";
    s += fortran_order ? "True" : "False";
    s += ", 'shape': (";
    for (std::size_t i = 0; i < shape.size(); ++i) {
        if (i != 0) {
            s += ", ";
        }
        s += std::to_string(shape[i]);
    }
    if (shape.size() == 1) {
        s += ',';
    }
    s += "), }";
    return s;
}

bool write_npy_header(unsigned char* out, std::size_t data_offset, dtype t, const std::vector<std::size_t>& shape,
                      bool fortran_order) noexcept
{
    std::string dict;
    try {
        dict = npy_dict(t, shape, fortran_order);
    } catch (...) {
        return false;
    }
    const unsigned version = npy_version_for(data_offset);
    const std::size_t prefix = npy_prefix_bytes(version);
    if (data_offset < prefix + dict.size() + 1 || data_offset - prefix > 0xFFFFFFFFu) {
        return false;
    }
    std::memcpy(out, npy_magic, sizeof npy_magic);
    out[0] = 0;
    out[6] = static_cast<unsigned char>(version);
    out[7] = 0;
    const std::size_t hlen = data_offset - prefix;
    for (std::size_t i = 0; i < prefix - 8; ++i) {
        out[8 + i] = static_cast<unsigned char>((hlen >> (8 * i)) & 0xFF);
    }
    std::memcpy(out + prefix, dict.data(), dict.size());
    std::memset(out + prefix + dict.size(), ' ', data_offset - prefix - dict.size() - 1);
    out[data_offset - 1] = '\n';
    return true;
}

npy_info npy_dict_parser::parse()
{
    npy_info info;
    bool have_descr = false, have_order = false, have_shape = false;
    ws();
    expect('{');
    for (;;) {
        ws();
        if (peek() == '}') {
            ++m_i;
            break;
        }
        const std::string_view key = string_literal("a quoted key");
        ws();
        expect(':');
        ws();
        if (key == "descr") {
            if (have_descr) {
                fail("key 'descr' appears twice");
            }
            if (peek() != '\'' && peek() != '"') {
                unsupported("structured or sub-array dtypes are not supported",
                            "share each field as its own array of a plain numeric dtype such as '<f8'");
            }
            info.type = descr(string_literal("a descr string"));
            have_descr = true;
        } else if (key == "fortran_order") {
            if (have_order) {
                fail("key 'fortran_order' appears twice");
            }
            info.fortran_order = boolean();
            have_order = true;
        } else if (key == "shape") {
            if (have_shape) {
                fail("key 'shape' appears twice");
            }
            info.shape = tuple();
            have_shape = true;
        } else {
            fail("unexpected key '" + std::string(key) + "' (a .npy header has exactly descr, fortran_order, shape)");
        }
        ws();
        if (peek() == ',') {
            ++m_i;
        } else if (peek() != '}') {
            fail("expected ',' or '}' after the value of '" + std::string(key) + "'");
        }
    }
    // The padding (spaces and a final newline) is most of a 4 KiB header: compare it with a page of
    // spaces (libc's vectorised memcmp), then check what is left byte by byte.
    static const auto page_of_spaces = [] {
        std::array<char, 4096> a{};
        a.fill(' ');
        return a;
    }();
    while (m_s.size() - m_i > 1) {
        const std::size_t n = std::min(page_of_spaces.size(), m_s.size() - m_i - 1);
        if (std::memcmp(m_s.data() + m_i, page_of_spaces.data(), n) != 0) {
            break;
        }
        m_i += n;
    }
    while (m_i < m_s.size()) {
        const char c = m_s[m_i++];
        if (c != ' ' && c != '\n' && c != '\t' && c != '\r' && c != '\0') {
            fail("unexpected text after the header dict");
        }
    }
    if (!have_descr || !have_order || !have_shape) {
        fail("the header lacks one of 'descr', 'fortran_order', 'shape'");
    }
    if (!checked_nbytes(info.shape, itemsize(info.type), info.size, info.nbytes)) {
        fail("the shape's element count overflows");
    }
    return info;
}

void npy_dict_parser::fail(const std::string& why) const
{
    raise<format_error>("parse .npy header of", m_name, "corrupt header: " + why,
                        "the segment or file is not a valid .npy; recreate it", make_error_code(errc::corrupt_header));
}

void npy_dict_parser::unsupported(const std::string& why, const std::string& fix) const
{
    raise<format_error>("parse .npy header of", m_name, why, fix, make_error_code(errc::unsupported_dtype));
}

void npy_dict_parser::expect(char c)
{
    if (peek() != c) {
        fail(std::string("expected '") + c + "'");
    }
    ++m_i;
}

std::string_view npy_dict_parser::string_literal(const char* what)
{
    const char q = peek();
    if (q != '\'' && q != '"') {
        fail(std::string("expected ") + what);
    }
    const std::size_t start = ++m_i;
    while (m_i < m_s.size() && m_s[m_i] != q) {
        if (m_s[m_i] == '\\' || m_s[m_i] == '\n' || m_i - start > 64) {
            fail(std::string("malformed ") + what);
        }
        ++m_i;
    }
    if (m_i >= m_s.size()) {
        fail(std::string("unterminated ") + what);
    }
    return m_s.substr(start, m_i++ - start);
}

bool npy_dict_parser::boolean()
{
    if (m_s.substr(m_i, 4) == "True") {
        m_i += 4;
        return true;
    }
    if (m_s.substr(m_i, 5) == "False") {
        m_i += 5;
        return false;
    }
    fail("fortran_order must be True or False");
}

std::vector<std::size_t> npy_dict_parser::tuple()
{
    std::vector<std::size_t> shape;
    shape.reserve(4); // one allocation for up to 4 dimensions
    expect('(');
    for (;;) {
        ws();
        if (peek() == ')') {
            ++m_i;
            return shape;
        }
        if (peek() == '-') {
            fail("negative dimension in shape");
        }
        if (peek() < '0' || peek() > '9') {
            fail("shape must be a tuple of non-negative integers");
        }
        std::uint64_t v = 0;
        while (peek() >= '0' && peek() <= '9') {
            const auto digit = static_cast<std::uint64_t>(peek() - '0');
            if (v > (std::numeric_limits<std::uint64_t>::max() - digit) / 10) {
                fail("dimension too large");
            }
            v = v * 10 + digit;
            ++m_i;
        }
        if (peek() == 'L') { // written by Python 2
            ++m_i;
        }
        if (v > static_cast<std::uint64_t>(std::numeric_limits<std::ptrdiff_t>::max())) {
            fail("dimension too large");
        }
        if (shape.size() == npy_max_ndim) {
            fail("more than 64 dimensions");
        }
        shape.push_back(static_cast<std::size_t>(v));
        ws();
        if (peek() == ',') {
            ++m_i;
        } else if (peek() != ')') {
            fail("expected ',' or ')' in shape");
        }
    }
}

dtype npy_dict_parser::descr(std::string_view d)
{
    const auto unsupported_dtype = [&] {
        unsupported("unsupported dtype '" + std::string(d) + "'",
                    "use one of bool, int8-int64, uint8-uint64, float32, float64, complex64, complex128, "
                    "little-endian (in NumPy: arr.astype('<f8') or similar)");
    };
    if (d.size() < 2) {
        fail("malformed descr '" + std::string(d) + "'");
    }
    const char order = d[0];
    const std::string_view code = d.substr(1);
    if (order == '>') {
        unsupported("big-endian dtype '" + std::string(d) + "' is not supported",
                    "convert it to little-endian first, e.g. arr.astype(arr.dtype.newbyteorder('<'))");
    }
    if (order != '<' && order != '|' && order != '=') {
        unsupported_dtype();
    }
    // The codes of dtype_descr without the byte order: b1, i1-i8, u1-u8, f4, f8, c8, c16.
    std::size_t bytes = 0;
    for (const char c : code.substr(1)) {
        bytes = c >= '0' && c <= '9' && bytes < 100 ? bytes * 10 + static_cast<std::size_t>(c - '0') : SIZE_MAX;
    }
    dtype t = dtype::float64;
    bool known = code.size() >= 2 && code[1] != '0';
    switch (known ? code[0] : '\0') {
    case 'b':
        t = dtype::bool_;
        known = bytes == 1;
        break;
    case 'i':
    case 'u': {
        const bool s = code[0] == 'i';
        t = bytes == 1   ? (s ? dtype::int8 : dtype::uint8)
            : bytes == 2 ? (s ? dtype::int16 : dtype::uint16)
            : bytes == 4 ? (s ? dtype::int32 : dtype::uint32)
                         : (s ? dtype::int64 : dtype::uint64);
        known = bytes == 1 || bytes == 2 || bytes == 4 || bytes == 8;
        break;
    }
    case 'f':
        t = bytes == 4 ? dtype::float32 : dtype::float64;
        known = bytes == 4 || bytes == 8;
        break;
    case 'c':
        t = bytes == 8 ? dtype::complex64 : dtype::complex128;
        known = bytes == 8 || bytes == 16;
        break;
    default:
        known = false;
    }
    // '|' means "no byte order", which only fits one-byte types.
    if (known && (order != '|' || itemsize(t) == 1)) {
        return t;
    }
    unsupported_dtype();
    return dtype::float64; // not reached: unsupported() throws
}

void raise_dtype_mismatch(const std::string& op, const std::string& name, const char* holder, dtype found, dtype want,
                          const char* verb, const char* more, std::error_code code)
{
    raise<dtype_mismatch>(op, name,
                          std::string("the ") + holder + " holds " + dtype_name(found) + " ('" + dtype_descr(found) +
                              "'), not " + dtype_name(want) + " ('" + dtype_descr(want) + "') as requested",
                          std::string(verb) + " it with the element type for " + dtype_name(found) + more, code);
}

npy_info parse_npy(const unsigned char* bytes, std::size_t size, const std::string& name, std::size_t total)
{
    if (total == SIZE_MAX) {
        total = size;
    }
    const auto bad = [&](const std::string& why, errc code) {
        raise<format_error>("parse .npy header of", name, why, "the segment or file is not a valid .npy; recreate it",
                            make_error_code(code));
    };
    if (size < 10 || std::memcmp(bytes, npy_magic, sizeof npy_magic) != 0) {
        bad("not a .npy (the magic \\x93NUMPY is missing)", errc::corrupt_header);
    }
    const unsigned major = bytes[6];
    if (major < 1 || major > 3 || bytes[7] != 0) {
        bad("unsupported .npy format version " + std::to_string(major) + "." + std::to_string(bytes[7]),
            errc::unsupported_format);
    }
    const std::size_t prefix = npy_prefix_bytes(major);
    if (size < prefix) {
        bad("truncated header", errc::truncated);
    }
    const std::size_t hlen = npy_header_end(bytes) - prefix;
    if (hlen > size - prefix) {
        bad("truncated: the header claims " + std::to_string(hlen) + " bytes but only " +
                std::to_string(size - prefix) + " follow",
            errc::truncated);
    }
    const std::string_view text(reinterpret_cast<const char*>(bytes + prefix), hlen);
    npy_info info = npy_dict_parser(text, name).parse();
    info.data_offset = prefix + hlen;
    if (total < info.data_offset || info.nbytes > total - info.data_offset) {
        bad("truncated: the header promises " + std::to_string(info.nbytes) + " bytes of data but only " +
                std::to_string(total < info.data_offset ? 0 : total - info.data_offset) + " are present",
            errc::truncated);
    }
    if (info.data_offset % itemsize(info.type) != 0) {
        bad("the data offset " + std::to_string(info.data_offset) + " is not aligned for " + dtype_name(info.type),
            errc::corrupt_header);
    }
    return info;
}

} // namespace ndshm::detail
#endif // NDSHM_DEFINITIONS

#endif
