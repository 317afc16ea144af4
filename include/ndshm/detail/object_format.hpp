/// @file detail/object_format.hpp
/// The byte layout of a composite object, shared by its segment and its file: computing the layout,
/// writing its fixed parts, and parsing it back as hostile input.
///
/// An object is a `.npy` of bytes (descr '|u1', shape (P,), data at byte 4096) followed by ndshm's
/// trailer with kind = kind_object. Its P payload bytes are, at offsets relative to the payload:
///
///     0              object header, 128 bytes (below)
///     128            table of contents: one 64-byte entry per array
///     dims_offset    every array's extents, u64 each, in entry order
///     blob_offset    the cereal blob: everything of the object that is not an array
///     (64-aligned)   the arrays, each at a 64-byte aligned offset (4096 for arrays of 1 MiB or more)
///
/// Every number is fixed-width little-endian. Object header:
///
///     0  char[8] "NDSHMOBJ"      24 u64 array_count     56 u64 blob_offset
///     8  u32 version (1)         32 u64 toc_offset      64 u64 blob_bytes
///     12 u32 header_bytes (128)  40 u64 dims_offset     72 u64 payload_bytes (== P)
///     16 u32 toc_entry_bytes(64) 48 u64 dims_count      80 reserved, zero, to 128
///     20 u32 codec (0 none, 1 zstd; files only)
///
/// Table of contents entry:
///
///     0  char[8] descr ("<f8", NUL-padded)   24 u64 offset (relative to the payload, 64-aligned)
///     8  u32 ndim                            32 u64 nbytes (prod(shape) * itemsize)
///     12 u32 flags: 1 fortran, 2 compressed  40 u64 stored_bytes (== nbytes unless compressed)
///     16 u64 dims_index (first extent)       48 reserved, zero, to 64
#ifndef NDSHM_DETAIL_OBJECT_FORMAT_HPP
#define NDSHM_DETAIL_OBJECT_FORMAT_HPP

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <ctime>
#include <unistd.h>

#include "../dtype.hpp"
#include "../error.hpp"
#include "config.hpp"
#include "npy.hpp"
#include "prefault.hpp"
#include "sys.hpp"
#include "trailer.hpp"

namespace ndshm::detail {

inline constexpr char object_magic[8] = {'N', 'D', 'S', 'H', 'M', 'O', 'B', 'J'};
inline constexpr std::uint32_t object_version = 1;
inline constexpr std::size_t object_header_bytes = 128;
inline constexpr std::size_t object_entry_bytes = 64;
/// Where the payload starts in a segment or file: page-aligned, so every array offset that is
/// aligned in the payload is aligned in memory too.
inline constexpr std::size_t object_payload_offset = 4096;
/// Arrays at least this large start on a page boundary.
inline constexpr std::size_t object_large_array = std::size_t(1) << 20;

enum : std::uint32_t { entry_fortran = 1u << 0, entry_compressed = 1u << 1 };
enum : std::uint32_t { codec_none = 0, codec_zstd = 1 };

inline void put_u32(unsigned char* p, std::uint32_t v) noexcept
{
    for (int i = 0; i < 4; ++i) {
        p[i] = static_cast<unsigned char>(v >> (8 * i));
    }
}
inline void put_u64(unsigned char* p, std::uint64_t v) noexcept
{
    for (int i = 0; i < 8; ++i) {
        p[i] = static_cast<unsigned char>(v >> (8 * i));
    }
}
inline std::uint32_t get_u32(const unsigned char* p) noexcept
{
    std::uint32_t v = 0;
    for (int i = 3; i >= 0; --i) {
        v = (v << 8) | p[i];
    }
    return v;
}
inline std::uint64_t get_u64(const unsigned char* p) noexcept
{
    std::uint64_t v = 0;
    for (int i = 7; i >= 0; --i) {
        v = (v << 8) | p[i];
    }
    return v;
}

/// a + b, or false on overflow.
inline bool add_to(std::size_t& a, std::size_t b) noexcept
{
    if (a > std::numeric_limits<std::size_t>::max() - b) {
        return false;
    }
    a += b;
    return true;
}

/// Rounds `a` up to a multiple of the power of two `align`, or false on overflow.
inline bool align_up(std::size_t& a, std::size_t align) noexcept
{
    if (!add_to(a, align - 1)) {
        return false;
    }
    a &= ~(align - 1);
    return true;
}

/// One array of an object as stored: its type and shape, and how many bytes it occupies.
struct array_desc {
    ndshm::dtype type = dtype::uint8;
    std::vector<std::size_t> shape;
    bool fortran = false;
    std::size_t nbytes = 0;       ///< prod(shape) * itemsize
    std::size_t stored_bytes = 0; ///< bytes in the payload: nbytes, or the compressed size
    bool compressed = false;
};

/// Where everything of an object goes.
struct object_layout {
    std::size_t dims_offset = 0;
    std::size_t dims_count = 0;
    std::size_t blob_offset = 0;
    std::size_t blob_bytes = 0;
    std::size_t payload_bytes = 0;
    std::vector<std::size_t> offsets; ///< each array's offset in the payload
    std::size_t trailer_offset = 0;   ///< from the start of the segment or file
    std::size_t total = 0;            ///< bytes of the whole segment or file, trailer included
};

/// Lays out `arrays` and a blob of `blob_bytes`. Throws out_of_space if the sizes overflow.
NDSHM_DECL object_layout compute_layout(const std::vector<array_desc>& arrays, std::size_t blob_bytes,
                                        const std::string& op, const std::string& name);

/// Writes the `.npy` header (magic's first byte left 0, as for an unpublished segment), the object
/// header, the table of contents, the extents and the blob into `base`, a zero-filled buffer of
/// `l.total` bytes. The arrays and the trailer are the caller's.
NDSHM_DECL void write_object_head(unsigned char* base, const object_layout& l, const std::vector<array_desc>& arrays,
                                  const unsigned char* blob, std::uint32_t codec);

/// Fills a trailer for an object image that is not a live segment (a file, or a private mapping):
/// state ready, the writing process as its creator.
NDSHM_DECL void fill_object_trailer(trailer& t, std::size_t payload_bytes) noexcept;

/// One array of a parsed object. Its extents stay in the payload (validated), so that parsing an
/// object of many arrays allocates nothing per array.
struct object_entry {
    ndshm::dtype type = dtype::uint8;
    const unsigned char* dims = nullptr; ///< ndim little-endian u64 extents
    std::uint32_t ndim = 0;
    bool fortran = false;
    bool compressed = false;
    std::size_t offset = 0; ///< from the start of the segment or file
    std::size_t size = 0;   ///< elements
    std::size_t nbytes = 0;
    std::size_t stored_bytes = 0;

    std::size_t extent(std::size_t k) const noexcept { return static_cast<std::size_t>(get_u64(dims + 8 * k)); }
    std::vector<std::size_t> shape() const
    {
        std::vector<std::size_t> s(ndim);
        for (std::uint32_t k = 0; k < ndim; ++k) {
            s[k] = extent(k);
        }
        return s;
    }
};

/// A validated object: every entry lies inside the payload and agrees with its shape.
struct parsed_object {
    std::vector<object_entry> entries;
    const unsigned char* blob = nullptr;
    std::size_t blob_bytes = 0;
    std::uint32_t codec = codec_none;
    std::size_t payload_bytes = 0;
};

/// The dtype whose NUL-padded 8-byte descr field is `d`, or false. Compares whole fields as
/// integers: a table of contents may hold many thousands of them.
inline bool dtype_from_descr(const unsigned char* d, ndshm::dtype& out) noexcept
{
    static constexpr dtype all[] = {dtype::float64, dtype::float32,   dtype::int64,     dtype::int32,  dtype::uint8,
                                    dtype::bool_,   dtype::int8,      dtype::int16,     dtype::uint16, dtype::uint32,
                                    dtype::uint64,  dtype::complex64, dtype::complex128};
    static const auto codes = [] {
        std::array<std::uint64_t, sizeof all / sizeof all[0]> c{};
        for (std::size_t i = 0; i < c.size(); ++i) {
            unsigned char field[8] = {};
            std::memcpy(field, dtype_descr(all[i]), std::strlen(dtype_descr(all[i])));
            c[i] = get_u64(field);
        }
        return c;
    }();
    const std::uint64_t v = get_u64(d);
    for (std::size_t i = 0; i < codes.size(); ++i) {
        if (codes[i] == v) {
            out = all[i];
            return true;
        }
    }
    return false;
}

/// Parses the payload of an object (`payload[0, n)`, found at `payload_offset` of its segment or
/// file) as hostile input: every offset, count and shape product is checked against `n` before use.
/// Throws format_error naming `name`.
NDSHM_DECL parsed_object parse_object_payload(const unsigned char* payload, std::size_t n, std::size_t payload_offset,
                                              const std::string& op, const std::string& name);

} // namespace ndshm::detail

#if NDSHM_DEFINITIONS
namespace ndshm::detail {

object_layout compute_layout(const std::vector<array_desc>& arrays, std::size_t blob_bytes, const std::string& op,
                             const std::string& name)
{
    const auto too_large = [&] {
        raise<out_of_space>(op, name, "the object's size overflows the address space", "share fewer or smaller arrays",
                            errno_code(EOVERFLOW));
    };
    object_layout l;
    std::size_t cursor = object_header_bytes;
    if (arrays.size() > (std::numeric_limits<std::size_t>::max() - cursor) / object_entry_bytes) {
        too_large();
    }
    cursor += arrays.size() * object_entry_bytes;
    l.dims_offset = cursor;
    for (const auto& a : arrays) {
        l.dims_count += a.shape.size();
    }
    if (l.dims_count > (std::numeric_limits<std::size_t>::max() - cursor) / 8) {
        too_large();
    }
    cursor += l.dims_count * 8;
    l.blob_offset = cursor;
    l.blob_bytes = blob_bytes;
    if (!add_to(cursor, blob_bytes)) {
        too_large();
    }
    l.offsets.reserve(arrays.size());
    for (const auto& a : arrays) {
        if (!align_up(cursor, a.stored_bytes >= object_large_array ? 4096 : 64)) {
            too_large();
        }
        l.offsets.push_back(cursor);
        if (!add_to(cursor, a.stored_bytes)) {
            too_large();
        }
    }
    l.payload_bytes = cursor;
    std::size_t end = object_payload_offset;
    const std::size_t limit = static_cast<std::size_t>(std::numeric_limits<off_t>::max()) / 2;
    if (!add_to(end, l.payload_bytes) || !align_up(end, 64) || end > limit) {
        too_large();
    }
    l.trailer_offset = end;
    l.total = end + sizeof(trailer);
    return l;
}

void write_object_head(unsigned char* base, const object_layout& l, const std::vector<array_desc>& arrays,
                       const unsigned char* blob, std::uint32_t codec)
{
    (void)write_npy_header(base, object_payload_offset, dtype::uint8, {l.payload_bytes}, false);
    unsigned char* p = base + object_payload_offset;
    std::memcpy(p, object_magic, sizeof object_magic);
    put_u32(p + 8, object_version);
    put_u32(p + 12, static_cast<std::uint32_t>(object_header_bytes));
    put_u32(p + 16, static_cast<std::uint32_t>(object_entry_bytes));
    put_u32(p + 20, codec);
    put_u64(p + 24, arrays.size());
    put_u64(p + 32, object_header_bytes);
    put_u64(p + 40, l.dims_offset);
    put_u64(p + 48, l.dims_count);
    put_u64(p + 56, l.blob_offset);
    put_u64(p + 64, l.blob_bytes);
    put_u64(p + 72, l.payload_bytes);
    std::size_t dim = 0;
    for (std::size_t i = 0; i < arrays.size(); ++i) {
        const array_desc& a = arrays[i];
        unsigned char* e = p + object_header_bytes + i * object_entry_bytes;
        const char* descr = dtype_descr(a.type);
        std::memcpy(e, descr, std::strlen(descr)); // at most 4 characters; the rest stays NUL
        put_u32(e + 8, static_cast<std::uint32_t>(a.shape.size()));
        put_u32(e + 12, (a.fortran ? entry_fortran : 0u) | (a.compressed ? entry_compressed : 0u));
        put_u64(e + 16, dim);
        put_u64(e + 24, l.offsets[i]);
        put_u64(e + 32, a.nbytes);
        put_u64(e + 40, a.stored_bytes);
        for (const std::size_t d : a.shape) {
            put_u64(p + l.dims_offset + 8 * dim++, d);
        }
    }
    if (l.blob_bytes != 0) {
        std::memcpy(p + l.blob_offset, blob, l.blob_bytes);
    }
}

void fill_object_trailer(trailer& t, std::size_t payload_bytes) noexcept
{
    std::memset(&t, 0, sizeof t);
    std::memcpy(t.magic, trailer_magic, sizeof trailer_magic);
    t.version = trailer_version;
    t.size = sizeof(trailer);
    t.kind = kind_object;
    t.state = state_ready;
    t.uid = static_cast<std::uint32_t>(current_uid());
    const auto me = static_cast<std::uint64_t>(::getpid());
    t.creator_pid = me;
    t.creator_start = process_start_time(me);
    t.data_offset = object_payload_offset;
    t.data_bytes = payload_bytes;
    struct timespec ts {};
    ::clock_gettime(CLOCK_REALTIME, &ts);
    t.created_ns = static_cast<std::uint64_t>(ts.tv_sec) * 1000000000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

parsed_object parse_object_payload(const unsigned char* payload, std::size_t n, std::size_t payload_offset,
                                   const std::string& op, const std::string& name)
{
    const auto bad = [&](const std::string& why) {
        raise<format_error>(op, name, "corrupt composite object: " + why,
                            "the segment or file was damaged or is not an ndshm object; recreate it",
                            make_error_code(errc::corrupt_object));
    };
    if (n < object_header_bytes) {
        bad("its payload of " + std::to_string(n) + " bytes is shorter than the object header");
    }
    if (std::memcmp(payload, object_magic, sizeof object_magic) != 0) {
        bad("the object header's magic NDSHMOBJ is missing");
    }
    if (get_u32(payload + 8) != object_version) {
        raise<format_error>(op, name,
                            "composite object format version " + std::to_string(get_u32(payload + 8)) +
                                " is not supported (this ndshm reads version " + std::to_string(object_version) + ")",
                            "use the ndshm version that made it", make_error_code(errc::unsupported_format));
    }
    if (get_u32(payload + 12) != object_header_bytes || get_u32(payload + 16) != object_entry_bytes) {
        bad("unexpected header or table-of-contents entry size");
    }
    parsed_object obj;
    obj.codec = get_u32(payload + 20);
    if (obj.codec != codec_none && obj.codec != codec_zstd) {
        raise<format_error>(op, name, "unknown compression codec " + std::to_string(obj.codec),
                            "use the ndshm version that made it", make_error_code(errc::unsupported_format));
    }
    const std::uint64_t count = get_u64(payload + 24);
    const std::uint64_t toc = get_u64(payload + 32);
    const std::uint64_t dims_offset = get_u64(payload + 40);
    const std::uint64_t dims_count = get_u64(payload + 48);
    const std::uint64_t blob_offset = get_u64(payload + 56);
    const std::uint64_t blob_bytes = get_u64(payload + 64);
    if (get_u64(payload + 72) != n) {
        bad("the object header says " + std::to_string(get_u64(payload + 72)) + " payload bytes, the .npy header " +
            std::to_string(n));
    }
    // Each region must lie inside [0, n): compare without overflowing.
    const auto inside = [n](std::uint64_t off, std::uint64_t len) { return off <= n && len <= n - off; };
    if (toc < object_header_bytes || count > n / object_entry_bytes || !inside(toc, count * object_entry_bytes)) {
        bad("the table of contents (" + std::to_string(count) + " entries at " + std::to_string(toc) +
            ") lies outside the payload");
    }
    if (dims_count > n / 8 || !inside(dims_offset, dims_count * 8)) {
        bad("the table of extents lies outside the payload");
    }
    if (!inside(blob_offset, blob_bytes)) {
        bad("the blob (" + std::to_string(blob_bytes) + " bytes at " + std::to_string(blob_offset) +
            ") lies outside the payload");
    }
    obj.blob = payload + blob_offset;
    obj.blob_bytes = static_cast<std::size_t>(blob_bytes);
    obj.payload_bytes = n;
    obj.entries.resize(static_cast<std::size_t>(count));
    for (std::size_t i = 0; i < obj.entries.size(); ++i) {
        const unsigned char* e = payload + toc + i * object_entry_bytes;
        object_entry& a = obj.entries[i];
        const auto which = [i] { return "array " + std::to_string(i); };
        if (!dtype_from_descr(e, a.type)) {
            bad(which() + " has an unsupported or corrupt dtype descr");
        }
        const std::uint32_t ndim = get_u32(e + 8);
        const std::uint32_t flags = get_u32(e + 12);
        const std::uint64_t first = get_u64(e + 16);
        const std::uint64_t offset = get_u64(e + 24);
        const std::uint64_t nbytes = get_u64(e + 32);
        const std::uint64_t stored = get_u64(e + 40);
        if (ndim > npy_max_ndim || first > dims_count || ndim > dims_count - first) {
            bad(which() + "'s extents lie outside the table of extents");
        }
        if ((flags & ~(entry_fortran | entry_compressed)) != 0) {
            bad(which() + " has unknown flags");
        }
        a.fortran = (flags & entry_fortran) != 0;
        a.compressed = (flags & entry_compressed) != 0;
        if (a.compressed && obj.codec == codec_none) {
            bad(which() + " is marked compressed in an object without a codec");
        }
        a.dims = payload + dims_offset + 8 * first;
        a.ndim = ndim;
        // prod(extents) * itemsize, refusing overflow, must be the recorded byte count.
        std::size_t elems = 1;
        bool overflow = false;
        for (std::uint32_t k = 0; k < ndim; ++k) {
            const std::uint64_t d = get_u64(a.dims + 8 * k);
            if (d > static_cast<std::uint64_t>(std::numeric_limits<std::ptrdiff_t>::max())) {
                bad(which() + " has an extent that is too large");
            }
            overflow = overflow || (d != 0 && elems > std::numeric_limits<std::size_t>::max() / d);
            elems = overflow ? 0 : elems * static_cast<std::size_t>(d);
        }
        const std::size_t item = itemsize(a.type);
        if (overflow || (elems != 0 && item > std::numeric_limits<std::size_t>::max() / elems) ||
            elems * item != nbytes) {
            bad(which() + "'s byte count disagrees with its shape");
        }
        a.size = elems;
        a.nbytes = static_cast<std::size_t>(nbytes);
        if (!a.compressed && stored != nbytes) {
            bad(which() + "'s stored size disagrees with its byte count");
        }
        if (offset % 64 != 0 || !inside(offset, stored)) {
            bad(which() + " (" + std::to_string(stored) + " bytes at " + std::to_string(offset) +
                ") lies outside the payload or is misaligned");
        }
        a.offset = payload_offset + static_cast<std::size_t>(offset);
        a.stored_bytes = static_cast<std::size_t>(stored);
    }
    return obj;
}

} // namespace ndshm::detail
#endif // NDSHM_DEFINITIONS

#endif
