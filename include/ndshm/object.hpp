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

#include <string>
#include <type_traits>

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

#include "detail/array_cereal.hpp"
#include "detail/object_archive.hpp"
#include "detail/object_format.hpp"
#include "detail/object_handle.hpp"
#include "detail/object_image.hpp"
#include "detail/segment_impl.hpp"
#include "error.hpp"
#include "options.hpp"
#include "queue.hpp"
#include "shared_ndarray.hpp"
#include "shared_tensor.hpp"

namespace ndshm {

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
        return detail::share_archive(ar, opt, op);
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
        return detail::share_archive(ar, q, op);
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
        detail::parsed_object obj;
        const auto m = detail::open_object(name, opt, obj);
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
        detail::parsed_object parsed;
        const auto& m = detail::held_object(obj, parsed);
        return detail::decode_object<T>(m, parsed, m->name());
    }
}

} // namespace ndshm

#endif
