/// @file detail/array_handoff.hpp
/// What may travel between processes by name: a handle that is a whole array segment. shared_ndarray
/// is only declared here (array_handle.hpp); shared_ndarray.hpp, which the users include, defines it.
#ifndef NDSHM_DETAIL_ARRAY_HANDOFF_HPP
#define NDSHM_DETAIL_ARRAY_HANDOFF_HPP

#include <memory>

#include "array_handle.hpp"
#include "segment_impl.hpp"
#include "trailer.hpp"

namespace ndshm::detail {

/// True if `a` is all of an array segment, so that its name stands for exactly this array: an ndshm
/// array (or a foreign `.npy`, which holds one array), not a member of a composite object or a slot of
/// a channel, whose name is the name of the larger segment.
template <class T>
bool whole_array_segment(const shared_ndarray<T>& a) noexcept
{
    const std::shared_ptr<mapping>& m = array_access::mapping_of(a);
    if (!m) {
        return false;
    }
    const trailer* t = m->get_trailer();
    if (t == nullptr) {
        return true; // a foreign .npy: one array per segment
    }
    return t->kind == kind_array && reinterpret_cast<const unsigned char*>(a.data()) == m->base() + t->data_offset &&
           a.size() * sizeof(T) == t->data_bytes;
}

} // namespace ndshm::detail

#endif
