/// @file detail/object_image.hpp
/// A composite object's image in shared memory (object.hpp): the blob and arrays that the archive
/// collected written into a new segment, or into a segment of an array queue's pool; and a mapped
/// image checked and parsed back (hostile input) for loading. None of it depends on the object's
/// type: share<T> and load<T> run cereal and leave the rest to these functions.
#ifndef NDSHM_DETAIL_OBJECT_IMAGE_HPP
#define NDSHM_DETAIL_OBJECT_IMAGE_HPP

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "../dtype.hpp"
#include "../error.hpp"
#include "../options.hpp"
#include "config.hpp"
#include "npy.hpp"
#include "object_archive.hpp"
#include "object_format.hpp"
#include "object_handle.hpp"
#include "prefault.hpp"
#include "queue_impl.hpp"
#include "queue_pool.hpp"
#include "queue_recycling.hpp"
#include "segment_impl.hpp"
#include "trailer.hpp"

namespace ndshm::detail {

/// Checks that a mapped segment or file is a composite object and parses it (hostile input).
NDSHM_DECL parsed_object parse_object_image(const mapping& m, const npy_info& info, std::uint32_t kind,
                                            const std::string& op, const std::string& name);

/// Parses the object image of mapping `m` (a segment: its header and its trailer say where things
/// are), as parse_object_image does.
inline parsed_object parse_mapped_object(const mapping& m, const std::string& op)
{
    const npy_info info = parse_npy(m.base(), m.size(), m.name());
    const trailer* t = find_trailer(m, info, op);
    return parse_object_image(m, info, t != nullptr ? t->kind : 0, op, m.name());
}

/// Copies the arrays recorded by `ar` into an object image at `base` laid out by `l`.
inline void copy_arrays(unsigned char* base, const object_layout& l, const object_output_archive& ar,
                        const std::vector<array_desc>& descs)
{
    for (std::size_t i = 0; i < descs.size(); ++i) {
        if (descs[i].nbytes != 0) {
            std::memcpy(base + object_payload_offset + l.offsets[i], ar.data()[i], descs[i].nbytes);
        }
    }
}

/// Writes what `ar` collected into one new segment (see ndshm::share), published and owned by this
/// process.
NDSHM_DECL shared_object share_archive(object_output_archive& ar, const options& opt, const std::string& op);

/// Writes what `ar` collected into a segment of queue `q`'s pool (see ndshm::share(obj, queue)),
/// published and owned by this process.
NDSHM_DECL shared_object share_archive(object_output_archive& ar, queue_impl& q, const std::string& op);

/// Attaches the object segment `name` and parses it into `obj` (see ndshm::load): an uncompressed
/// object, whatever its type.
NDSHM_DECL std::shared_ptr<mapping> open_object(const std::string& name, const options& opt, parsed_object& obj);

/// The mapping of object handle `h`, parsed into `obj` (see ndshm::load of a handle).
NDSHM_DECL const std::shared_ptr<mapping>& held_object(const shared_object& h, parsed_object& obj);

} // namespace ndshm::detail

#if NDSHM_DEFINITIONS
namespace ndshm::detail {

parsed_object parse_object_image(const mapping& m, const npy_info& info, std::uint32_t kind, const std::string& op,
                                 const std::string& name)
{
    if (kind == 0) {
        raise<format_error>(op, name, "not a composite object: it has no ndshm trailer (a plain .npy)",
                            "attach it with ndshm::attach_any or load it with ndshm::read_npy", errno_code(EINVAL));
    }
    if (kind == kind_array) {
        raise<format_error>(op, name, "not a composite object: it holds a single array",
                            "attach it with ndshm::shared_ndarray<T>::attach or ndshm::attach_any", errno_code(EINVAL));
    }
    if (kind != kind_object) {
        raise<format_error>(op, name,
                            "not a composite object: its trailer says kind " + std::to_string(kind) +
                                " (an ndshm segment of another kind)",
                            "open it with the ndshm function that created it", errno_code(EINVAL));
    }
    if (info.type != dtype::uint8 || info.shape.size() != 1 || info.fortran_order || info.data_offset % 64 != 0) {
        raise<format_error>(op, name,
                            "corrupt composite object: its .npy header does not describe a byte payload at an "
                            "aligned offset",
                            "the segment or file was damaged; recreate it", make_error_code(errc::corrupt_object));
    }
    if (info.data_offset > m.size() || info.nbytes > m.size() - info.data_offset) {
        raise<format_error>(op, name, "corrupt composite object: truncated", "recreate it",
                            make_error_code(errc::truncated));
    }
    const unsigned char* payload = m.base() + info.data_offset;
    if (info.nbytes >= object_header_bytes) {
        // The table of contents, the extents and the blob are all read next: map them in one call.
        const std::uint64_t end = get_u64(payload + 56) + get_u64(payload + 64); // blob offset + bytes
        if (end >= get_u64(payload + 56) && end <= info.nbytes) {
            prefault(m.base(), info.data_offset + static_cast<std::size_t>(end), false);
        }
    }
    return parse_object_payload(payload, info.nbytes, info.data_offset, op, name);
}

shared_object share_archive(object_output_archive& ar, const options& opt, const std::string& op)
{
    auto& descs = ar.descs();
    const object_layout l = compute_layout(descs, ar.blob().size(), op, opt.name);
    auto m = create_segment(opt, l.total, op);
    prefault(m->base(), m->size(), true); // every page is written next
    write_object_head(m->base(), l, descs, ar.blob().data(), codec_none);
    copy_arrays(m->base(), l, ar, descs);
    write_trailer(*m, l.trailer_offset, kind_object, object_payload_offset, l.payload_bytes);
    m->publish();
    return object_access::make(std::move(m), descs.size());
}

shared_object share_archive(object_output_archive& ar, queue_impl& q, const std::string& op)
{
    auto& descs = ar.descs();
    const object_layout l = compute_layout(descs, ar.blob().size(), op, q.name());
    queue_acquired a = q.acquire(l.total, op);
    unsigned char* base = a.map->base();
    if (a.fresh) {
        prefault(base, a.map->size(), true); // every page is written next
    } else {
        // The fixed part is written into zeros, as in a new segment; the arrays overwrite theirs.
        std::memset(base + object_payload_offset, 0, l.blob_offset);
    }
    write_object_head(base, l, descs, ar.blob().data(), codec_none);
    copy_arrays(base, l, ar, descs);
    if (a.fresh) {
        write_trailer(*a.map, l.trailer_offset, kind_object, object_payload_offset, l.payload_bytes);
    } else {
        place_pooled_trailer(*a.map, kind_object, object_payload_offset, l.payload_bytes);
    }
    npy_info info;
    info.type = dtype::uint8;
    info.shape = {l.payload_bytes};
    info.data_offset = object_payload_offset;
    info.size = info.nbytes = l.payload_bytes;
    q.finish(a, info, true);
    a.map->publish();
    return object_access::make(std::move(a.handle), descs.size());
}

std::shared_ptr<mapping> open_object(const std::string& name, const options& opt, parsed_object& obj)
{
    const std::string op = "load";
    npy_info info;
    std::uint32_t kind = 0;
    auto m = open_npy_segment(opt, name, op, info, kind);
    obj = parse_object_image(*m, info, kind, op, name);
    if (obj.codec != codec_none) {
        raise<format_error>(op, name, "corrupt composite object: a segment holds compressed arrays",
                            "only object files are compressed; recreate the segment",
                            make_error_code(errc::corrupt_object));
    }
    return m;
}

const std::shared_ptr<mapping>& held_object(const shared_object& h, parsed_object& obj)
{
    const auto& m = object_access::mapping_of(h);
    if (!m) {
        raise<error>("load", "", "the shared_object handle is empty", "load from a handle share() returned",
                     errno_code(EINVAL));
    }
    obj = parse_mapped_object(*m, "load");
    return m;
}

} // namespace ndshm::detail
#endif // NDSHM_DEFINITIONS

#endif
