/// @file detail/array_segment.hpp
/// Array segments: creating one (header and trailer written, not yet published), publishing it,
/// opening a published `.npy` segment (header and trailer checked with pread before anything is
/// mapped), attaching one as an array of a given dtype, and rewriting its header for reshape.
#ifndef NDSHM_DETAIL_ARRAY_SEGMENT_HPP
#define NDSHM_DETAIL_ARRAY_SEGMENT_HPP

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "../dtype.hpp"
#include "../error.hpp"
#include "../options.hpp"
#include "array_index.hpp"
#include "config.hpp"
#include "mapping.hpp"
#include "npy.hpp"
#include "region_cache.hpp"
#include "segment_create.hpp"
#include "segment_open.hpp"
#include "segment_trailer.hpp"
#include "trailer.hpp"

namespace ndshm::detail {

/// Byte offset of the data in a segment ndshm creates: always 4096, the page-aligned start of the
/// format, which satisfies every alignment options::alignment may ask for.
NDSHM_DECL std::size_t data_offset_for(const options& opt, const std::string& op);

/// Creates a segment for an array, writes its header and trailer; not yet published.
NDSHM_DECL std::shared_ptr<mapping> create_array_segment(const options& opt, dtype t,
                                                         const std::vector<std::size_t>& shape, bool fortran,
                                                         const std::string& op, npy_info& info);

/// Publishes the new array segment `m` holding `info`'s array, and lets later attaches in this
/// process share its mapping.
inline void publish_array(mapping& m, const npy_info& info)
{
    m.publish();
    remember_layout(m, info, kind_array);
}

/// A mapping of `loc` over `r`, a region of file `id` that this process maps already (see
/// region_cache), with the trailer where `layout` says it is.
NDSHM_DECL std::shared_ptr<mapping> mapping_over(location loc, std::shared_ptr<const region> r, bool writable,
                                                 file_id id, const segment_layout& layout);

/// Opens, parses and maps a published `.npy` segment: header and trailer are read and checked with
/// pread before anything is mapped, so attach costs no page fault. `kind` is the trailer's kind, or 0
/// for a foreign segment (no trailer).
NDSHM_DECL std::shared_ptr<mapping> open_npy_segment(const options& opt, const std::string& name, const std::string& op,
                                                     npy_info& info, std::uint32_t& kind);

/// Opens a published array segment and parses it: a valid .npy, not a composite object.
NDSHM_DECL std::shared_ptr<mapping> attach_array_segment(const std::string& name, const options& opt, npy_info& info);

/// Throws dtype_mismatch unless a segment holding `found` may be seen as an array of `want`.
inline void check_segment_dtype(const std::string& op, const std::string& name, dtype found, dtype want)
{
    if (found != want) {
        raise_dtype_mismatch(op, name, "segment", found, want, "attach", ", or use ndshm::attach_any to inspect it",
                             make_error_code(errc::dtype_mismatch));
    }
}

/// Throws dtype_mismatch unless a segment holding `found` may be seen as T.
template <class T>
void check_dtype(const std::string& op, const std::string& name, dtype found)
{
    check_segment_dtype(op, name, found, dtype_of<T>);
}

/// Attaches the array segment `name` for a handle of element type `want`: read-only for a read-only
/// handle (of const T) whatever opt.read_only says, while a writable handle refuses opt.read_only.
/// @throws as attach_array_segment, and dtype_mismatch unless the segment holds `want`
NDSHM_DECL std::shared_ptr<mapping> attach_array_as(const std::string& name, const options& opt, bool read_only_handle,
                                                    dtype want, npy_info& info);

/// Rewrites the `.npy` header of the array `info` describes in the writable mapping `m` to `shape`
/// (the same number of elements, the same dtype and order), and updates `info`. The header is
/// unpublished while it changes: an attach meanwhile waits (options::ready_timeout) instead of reading
/// half of it.
NDSHM_DECL void rewrite_shape(mapping& m, npy_info& info, const std::vector<std::size_t>& shape);

} // namespace ndshm::detail

#if NDSHM_DEFINITIONS
namespace ndshm::detail {

std::size_t data_offset_for(const options& opt, const std::string& op)
{
    const std::size_t a = opt.alignment;
    if (a == 0 || (a & (a - 1)) != 0 || a > 4096) {
        raise<error>(op, opt.name, "options::alignment " + std::to_string(a) + " is not a power of two up to 4096",
                     "use 4096 (the default) or a smaller power of two", make_error_code(errc::invalid_argument));
    }
    return 4096;
}

std::shared_ptr<mapping> create_array_segment(const options& opt, dtype t, const std::vector<std::size_t>& shape,
                                              bool fortran, const std::string& op, npy_info& info)
{
    info.type = t;
    info.shape = shape;
    info.fortran_order = fortran;
    info.data_offset = data_offset_for(opt, op);
    if (shape.size() > npy_max_ndim) {
        raise<error>(op, opt.name, std::to_string(shape.size()) + " dimensions requested", "use at most 64",
                     make_error_code(errc::invalid_argument));
    }
    const std::size_t limit = static_cast<std::size_t>(std::numeric_limits<off_t>::max()) / 2;
    if (!checked_nbytes(shape, itemsize(t), info.size, info.nbytes) || info.nbytes > limit) {
        raise<out_of_space>(op, opt.name, "the requested shape's size overflows", "check the shape",
                            errno_code(EOVERFLOW));
    }
    const std::size_t toff = trailer_offset(info.data_offset + info.nbytes);
    auto m = create_segment(opt, toff + sizeof(trailer), op);
    if (!write_npy_header(m->base(), info.data_offset, t, shape, fortran)) {
        raise<error>(op, m->name(), "the .npy header does not fit before the data", "use fewer dimensions",
                     make_error_code(errc::invalid_argument));
    }
    write_trailer(*m, toff, kind_array, info.data_offset, info.nbytes);
    return m;
}

std::shared_ptr<mapping> mapping_over(location loc, std::shared_ptr<const region> r, bool writable, file_id id,
                                      const segment_layout& layout)
{
    auto m = std::make_shared<mapping>(std::move(loc), std::move(r), writable);
    m->set_id(id);
    if (layout.trailer_off != SIZE_MAX) {
        m->set_trailer(reinterpret_cast<trailer*>(m->base() + layout.trailer_off));
    }
    return m;
}

std::shared_ptr<mapping> open_npy_segment(const options& opt, const std::string& name, const std::string& op,
                                          npy_info& info, std::uint32_t& kind)
{
    published_segment seg = open_published(opt, name, op, !opt.populate);
    if (seg.mapped) {
        info = std::move(seg.layout.info);
        kind = seg.layout.kind;
        return mapping_over(std::move(seg.loc), std::move(seg.mapped), !opt.read_only, seg.id, seg.layout);
    }
    info = parse_npy(seg.head(), seg.head_size, name, seg.size);
    kind = 0;
    // The trailer, from the bytes already read or with one more pread (cheaper than the page fault of
    // reading it through the mapping).
    const std::size_t off = trailer_offset_in(info, seg.size);
    trailer copy{};
    bool found = false;
    if (off != SIZE_MAX) {
        if (off + sizeof copy <= seg.head_size) {
            std::memcpy(&copy, seg.head() + off, sizeof copy);
            found = true;
        } else {
            found = read_at(seg.fd.get(), &copy, sizeof copy, off, op, name) == sizeof copy;
        }
        found = found && has_trailer_magic(copy);
    }
    if (found) {
        check_trailer(copy, info, name, op);
        kind = copy.kind;
    }
    auto m = map_published(seg, opt, op);
    if (found) {
        m->set_trailer(reinterpret_cast<trailer*>(m->base() + off));
    }
    if (seg.head_size >= info.data_offset) {
        remember_layout(*m, info, kind, seg.head()); // the bytes read: the mapping stays untouched
    }
    return m;
}

std::shared_ptr<mapping> attach_array_segment(const std::string& name, const options& opt, npy_info& info)
{
    std::uint32_t kind = 0;
    auto m = open_npy_segment(opt, name, "attach", info, kind);
    if (kind == kind_object) {
        raise<format_error>("attach", name, "the segment holds a composite object, not an array",
                            "load it with ndshm::load<T>(name)", make_error_code(errc::wrong_kind));
    }
    if (kind == kind_dict || kind == kind_list) {
        const std::string what = kind == kind_dict ? "dict" : "list";
        raise<format_error>("attach", name, "the segment is a shared_" + what + "'s table, not an array",
                            "attach it with ndshm::shared_" + what + "::attach; its entries are arrays",
                            make_error_code(errc::wrong_kind));
    }
    if (kind != 0 && kind != kind_array) {
        const bool known = kind == kind_channel || kind == kind_queue;
        const std::string what = kind == kind_channel ? "channel" : "queue";
        raise<format_error>("attach", name,
                            known ? "the segment is a " + what + ", not an array"
                                  : "the segment is of an unknown kind " + std::to_string(kind),
                            known ? std::string(kind == kind_channel ? "attach it with ndshm::channel<T>::attach"
                                                                     : "attach it with ndshm::array_queue::attach")
                                  : "use the ndshm version that made it",
                            make_error_code(errc::wrong_kind));
    }
    return m;
}

std::shared_ptr<mapping> attach_array_as(const std::string& name, const options& opt, bool read_only_handle, dtype want,
                                         npy_info& info)
{
    std::shared_ptr<mapping> m;
    if (read_only_handle) {
        if (opt.read_only) {
            m = attach_array_segment(name, opt, info);
        } else {
            options o = opt;
            o.read_only = true;
            m = attach_array_segment(name, o, info);
        }
    } else {
        if (opt.read_only) {
            raise<error>("attach", name, "options::read_only asks for a read-only mapping of a writable handle",
                         std::string("attach it with a const element type (for example shared_ndarray<const ") +
                             dtype_name(want) + ">)",
                         make_error_code(errc::invalid_argument));
        }
        m = attach_array_segment(name, opt, info);
    }
    check_segment_dtype("attach", name, info.type, want);
    return m;
}

void rewrite_shape(mapping& m, npy_info& info, const std::vector<std::size_t>& shape)
{
    const std::string op = "reshape";
    std::size_t size = 0, nbytes = 0;
    if (!checked_nbytes(shape, itemsize(info.type), size, nbytes) || size != info.size) {
        raise<error>(op, m.name(),
                     "the new shape " + shape_string(shape) + " does not hold the " + std::to_string(info.size) +
                         " elements of " + shape_string(info.shape),
                     "give a shape with the same number of elements, or make a larger array with resized()",
                     make_error_code(errc::invalid_argument));
    }
    if (!m.writable()) {
        raise<error>(op, m.name(), "the handle maps the segment read-only", "reshape through a writable handle",
                     make_error_code(errc::invalid_argument));
    }
    std::vector<unsigned char> header(info.data_offset);
    if (shape.size() > npy_max_ndim ||
        !write_npy_header(header.data(), info.data_offset, info.type, shape, info.fortran_order)) {
        raise<error>(op, m.name(), "the header for shape " + shape_string(shape) + " does not fit before the data",
                     "use fewer dimensions", make_error_code(errc::invalid_argument));
    }
    header[0] = static_cast<unsigned char>(npy_magic[0]);
    unsigned char* base = m.base();
    __atomic_store_n(base, static_cast<unsigned char>(0), __ATOMIC_RELEASE); // unpublished
    std::atomic_thread_fence(std::memory_order_seq_cst);
    std::memcpy(base + 1, header.data() + 1, header.size() - 1);
    __atomic_store_n(base, header[0], __ATOMIC_RELEASE); // published again, the magic's first byte last
    info.shape = shape;
    remember_layout(m, info, m.get_trailer() != nullptr ? std::uint32_t{kind_array} : std::uint32_t{0});
}

} // namespace ndshm::detail
#endif // NDSHM_DEFINITIONS

#endif
