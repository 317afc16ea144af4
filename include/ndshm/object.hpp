/// @file object.hpp
/// Composite objects in shared memory: `ndshm::share(obj)` puts any object cereal can serialise into
/// one segment (its arrays as arrays, the rest as a cereal blob), `ndshm::load<T>(name)` rebuilds it
/// in any process of the same user.
///
///     struct frame {
///         std::string label;
///         std::map<std::string, xt::xarray<double>> fields;
///         ndshm::shared_ndarray<float> pixels;
///         template <class A> void serialize(A& ar) { ar(label, fields, pixels); }
///     };
///     ndshm::shared_object h = ndshm::share(f);       // one segment; f is not modified
///     frame g = ndshm::load<frame>(h.name());        // pixels: a zero-copy view; fields: copied out
///
/// This header includes cereal's serialisers for every std type cereal supports (string, vector,
/// array, map, set, unordered_map/set, list, deque, forward_list, queue, stack, pair, tuple, optional,
/// variant, complex, bitset, valarray, chrono, atomic, unique_ptr/shared_ptr/weak_ptr) and
/// cereal::base_class. Polymorphic pointers need <cereal/types/polymorphic.hpp> and the usual
/// CEREAL_REGISTER_TYPE, placed after this header; cereal binds a registered type to every archive the
/// program includes (ndshm/pool.hpp brings cereal's binary archive), so keep array members out of the
/// polymorphic types themselves.
#ifndef NDSHM_OBJECT_HPP
#define NDSHM_OBJECT_HPP

#include <cstddef>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <cereal/cereal.hpp>
#include <cereal/types/array.hpp>
#include <cereal/types/atomic.hpp>
#include <cereal/types/base_class.hpp>
#include <cereal/types/bitset.hpp>
#include <cereal/types/chrono.hpp>
#include <cereal/types/complex.hpp>
#include <cereal/types/deque.hpp>
#include <cereal/types/forward_list.hpp>
#include <cereal/types/functional.hpp>
#include <cereal/types/list.hpp>
#include <cereal/types/map.hpp>
#include <cereal/types/memory.hpp>
#include <cereal/types/optional.hpp>
#include <cereal/types/queue.hpp>
#include <cereal/types/set.hpp>
#include <cereal/types/stack.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/tuple.hpp>
#include <cereal/types/unordered_map.hpp>
#include <cereal/types/unordered_set.hpp>
#include <cereal/types/utility.hpp>
#include <cereal/types/valarray.hpp>
#include <cereal/types/variant.hpp>
#include <cereal/types/vector.hpp>

#include "detail/object_archive.hpp"
#include "detail/object_format.hpp"
#include "detail/object_handle.hpp"
#include "detail/segment_impl.hpp"
#include "error.hpp"
#include "options.hpp"
#include "queue.hpp"
#include "shared_ndarray.hpp"

namespace ndshm {

namespace detail {

template <class T>
inline constexpr bool is_shareable_v = cereal::traits::is_output_serializable<T, object_output_archive>::value;
template <class T>
inline constexpr bool is_loadable_v = cereal::traits::is_input_serializable<T, object_input_archive>::value;

template <class T>
constexpr void check_shareable()
{
    static_assert(is_shareable_v<T>,
                  "ndshm: cereal cannot serialise this type. Give it a member `template <class Archive> void "
                  "serialize(Archive& ar) { ar(member1, member2, ...); }` (or a save/load pair, member or free "
                  "function) that lists its members. ndshm/object.hpp includes cereal's serialisers for the std "
                  "types; xt::xarray, xt::xtensor and ndshm::shared_ndarray members are stored as arrays.");
}

template <class T>
constexpr void check_loadable()
{
    check_shareable<T>();
    static_assert(!is_shareable_v<T> || is_loadable_v<T>,
                  "ndshm: cereal can save this type but not load it: give it a load function to match its save");
    static_assert(std::is_default_constructible_v<T>,
                  "ndshm::load<T>: T must be default-constructible (cereal loads into a default-constructed T)");
}

/// Runs cereal over `obj`: the blob and the list of arrays end up in `ar`.
template <class T>
void serialize_object(object_output_archive& ar, const T& obj, const std::string& op)
{
    try {
        ar(obj);
    } catch (const cereal::Exception& e) {
        raise<serialization_error>(op, "", std::string("cereal could not serialise the object: ") + e.what(),
                                   "check the type's serialize/save functions", errno_code(EINVAL));
    }
}

/// Checks that a mapped segment or file is a composite object and parses it (hostile input).
inline parsed_object parse_object_image(const mapping& m, const npy_info& info, std::uint32_t kind,
                                        const std::string& op, const std::string& name)
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

/// Rebuilds a T from a parsed, uncompressed object in mapping `m`.
template <class T>
T decode_object(const std::shared_ptr<mapping>& m, const parsed_object& obj, const std::string& name)
{
    T value{};
    object_input_archive ar(obj, m, name);
    try {
        ar(value);
    } catch (const error&) {
        throw;
    } catch (const std::exception& e) {
        // cereal's own exceptions, and what a hostile size or tag makes a container throw.
        raise<serialization_error>(
            "load", name, std::string("the blob does not decode as the requested type: ") + e.what(),
            "load it as the type it was shared or saved as, or recreate it", make_error_code(errc::serialization));
    }
    if (ar.remaining() != 0) {
        ar.fail(std::to_string(ar.remaining()) + " bytes of the blob are left over after decoding");
    }
    return value;
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

} // namespace detail

/// Puts `obj` into one new segment: its xt::xarray, xt::xtensor and shared_ndarray members (at any
/// depth of containers) as arrays, everything else as a cereal blob. `obj` is not modified; the
/// arrays are copied once, straight into the segment. `opt` is as for shared_ndarray::create (name,
/// mode, directory backend, ...).
///
/// T must be serialisable by cereal (a `serialize` member or save/load functions); a type that is
/// not fails to compile with a message saying how to fix it.
/// @throws already_exists, permission_denied, out_of_space, serialization_error, error
template <class T>
shared_object share(const T& obj, const options& opt = {})
{
    detail::check_shareable<T>();
    if constexpr (detail::is_shareable_v<T>) {
        const std::string op = "share";
        (void)detail::data_offset_for(opt, op);
        detail::object_output_archive ar;
        detail::serialize_object(ar, obj, op);
        auto& descs = ar.descs();
        const detail::object_layout l = detail::compute_layout(descs, ar.blob().size(), op, opt.name);
        auto m = detail::create_segment(opt, l.total, op);
        detail::prefault(m->base(), m->size(), true); // every page is written next
        detail::write_object_head(m->base(), l, descs, ar.blob().data(), detail::codec_none);
        detail::copy_arrays(m->base(), l, ar, descs);
        detail::write_trailer(*m, l.trailer_offset, detail::kind_object, detail::object_payload_offset,
                              l.payload_bytes);
        m->publish();
        return detail::object_access::make(std::move(m), descs.size());
    }
}

/// Puts `obj` into a segment of `queue`'s recycling pool, as share(obj) does into a new one: a free
/// segment that has the room (its mapping kept in this process from an earlier handoff: no page to map
/// or fault in), else a new one that joins the pool. Push the handle into the queue; the process that
/// pops it (pop_object) and loads it gives the segment back to the queue when the handle and every
/// array loaded from it are gone.
///
///     auto q = ndshm::array_queue::create(4);
///     q.push(ndshm::share(frame, q));                       // producer
///     auto f = ndshm::load<frame_type>(q.pop_object());     // consumer: members are views
///
/// @throws as share(obj), and error if the queue is closed or the handle is empty
template <class T>
shared_object share(const T& obj, array_queue& queue)
{
    detail::check_shareable<T>();
    if constexpr (detail::is_shareable_v<T>) {
        const std::string op = "share";
        detail::queue_impl& q = detail::queue_access::impl(queue, op.c_str());
        detail::object_output_archive ar;
        detail::serialize_object(ar, obj, op);
        auto& descs = ar.descs();
        const detail::object_layout l = detail::compute_layout(descs, ar.blob().size(), op, queue.name());
        detail::queue_acquired a = q.acquire(l.total, op);
        unsigned char* base = a.map->base();
        if (a.fresh) {
            detail::prefault(base, a.map->size(), true); // every page is written next
        } else {
            // The fixed part is written into zeros, as in a new segment; the arrays overwrite theirs.
            std::memset(base + detail::object_payload_offset, 0, l.blob_offset);
        }
        detail::write_object_head(base, l, descs, ar.blob().data(), detail::codec_none);
        detail::copy_arrays(base, l, ar, descs);
        if (a.fresh) {
            detail::write_trailer(*a.map, l.trailer_offset, detail::kind_object, detail::object_payload_offset,
                                  l.payload_bytes);
        } else {
            detail::place_pooled_trailer(*a.map, detail::kind_object, detail::object_payload_offset, l.payload_bytes);
        }
        detail::npy_info info;
        info.type = dtype::uint8;
        info.shape = {l.payload_bytes};
        info.data_offset = detail::object_payload_offset;
        info.size = info.nbytes = l.payload_bytes;
        q.finish(a, info, true);
        a.map->publish();
        return detail::object_access::make(std::move(a.handle), descs.size());
    }
}

/// Rebuilds the object shared under `name`, in any process of the same user. shared_ndarray members
/// become zero-copy views into the object's one mapping (writable unless options::read_only; they
/// keep the mapping alive); xt::xarray and xt::xtensor members are copied out. Waits up to
/// options::ready_timeout for a segment that is still being written.
/// @throws not_found, permission_denied, format_error (not an object, truncated, a table of contents
/// that points outside the segment), serialization_error (the blob does not decode as T),
/// dtype_mismatch (an array member of another element type), error
template <class T>
T load(const std::string& name, const options& opt = {})
{
    detail::check_loadable<T>();
    if constexpr (detail::is_shareable_v<T> && detail::is_loadable_v<T> && std::is_default_constructible_v<T>) {
        const std::string op = "load";
        detail::npy_info info;
        std::uint32_t kind = 0;
        auto m = detail::open_npy_segment(opt, name, op, info, kind);
        const detail::parsed_object obj = detail::parse_object_image(*m, info, kind, op, name);
        if (obj.codec != detail::codec_none) {
            detail::raise<format_error>(op, name, "corrupt composite object: a segment holds compressed arrays",
                                        "only object files are compressed; recreate the segment",
                                        make_error_code(errc::corrupt_object));
        }
        return detail::decode_object<T>(m, obj, name);
    }
}

/// Rebuilds the object of a handle this process holds, through the handle's own mapping.
/// @throws as load(name)
template <class T>
T load(const shared_object& obj)
{
    detail::check_loadable<T>();
    if constexpr (detail::is_shareable_v<T> && detail::is_loadable_v<T> && std::is_default_constructible_v<T>) {
        const auto& m = detail::object_access::mapping_of(obj);
        if (!m) {
            detail::raise<error>("load", "", "the shared_object handle is empty", "load from a handle share() returned",
                                 detail::errno_code(EINVAL));
        }
        const detail::npy_info info = detail::parse_npy(m->base(), m->size(), m->name());
        const detail::trailer* t = detail::find_trailer(*m, info, "load");
        const detail::parsed_object parsed = detail::parse_object_image(*m, info, t != nullptr ? t->kind : 0, "load",
                                                                        m->name());
        return detail::decode_object<T>(m, parsed, m->name());
    }
}

} // namespace ndshm

#endif
