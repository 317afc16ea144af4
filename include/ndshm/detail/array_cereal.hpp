/// @file detail/array_cereal.hpp
/// shared_ndarray and shared_tensor in cereal's own archives (binary, portable binary, JSON, XML):
/// by value. Saving writes the dtype, the shape, the order and the elements; loading creates a new
/// shared array, owned by the loading process, holding them. ndshm's object archive (object.hpp)
/// has its own, more specialised functions: there a member is copied into the object's segment and
/// loaded as a view of it. These exist so that a type with array members serialises with any
/// archive cereal is asked for, which matters for polymorphic types: CEREAL_REGISTER_TYPE
/// instantiates every archive included before it.
///
/// shared_ndarray and shared_tensor are only declared here (array_handle.hpp): everything that uses
/// them depends on the element type, and is compiled where shared_ndarray.hpp and shared_tensor.hpp
/// define them.
#ifndef NDSHM_DETAIL_ARRAY_CEREAL_HPP
#define NDSHM_DETAIL_ARRAY_CEREAL_HPP

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include <cereal/cereal.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>

#include "../dtype.hpp"
#include "../error.hpp"
#include "array_handle.hpp"

namespace ndshm::detail {

class object_output_archive;
class object_input_archive;

template <class A>
inline constexpr bool is_object_archive_v = std::is_same_v<A, object_output_archive> ||
                                            std::is_same_v<A, object_input_archive>;

template <class Archive, class H>
void save_by_value(Archive& ar, const H& a)
{
    using value_type = typename H::value_type;
    const std::string descr = a.empty() ? std::string() : std::string(dtype_descr(dtype_of<value_type>));
    const std::vector<std::uint64_t> shape(a.shape().begin(), a.shape().end());
    ar(cereal::make_nvp("descr", descr), cereal::make_nvp("shape", shape),
       cereal::make_nvp("fortran_order", a.fortran_order()));
    if (a.empty()) {
        return;
    }
    if constexpr (cereal::traits::is_output_serializable<cereal::BinaryData<const value_type*>, Archive>::value &&
                  !std::is_same_v<value_type, bool>) {
        ar(cereal::make_nvp("data", cereal::binary_data(a.data(), a.nbytes())));
    } else {
        ar(cereal::make_nvp("data", std::vector<value_type>(a.begin(), a.end())));
    }
}

template <class Archive, class H>
void load_by_value(Archive& ar, H& a)
{
    using value_type = typename H::value_type;
    std::string descr;
    std::vector<std::uint64_t> shape;
    bool fortran = false;
    ar(cereal::make_nvp("descr", descr), cereal::make_nvp("shape", shape), cereal::make_nvp("fortran_order", fortran));
    if (descr.empty()) {
        a = H();
        return;
    }
    if (descr != dtype_descr(dtype_of<value_type>)) {
        raise<serialization_error>("load", "",
                                   "the archive holds an array of dtype '" + descr + "', not '" +
                                       dtype_descr(dtype_of<value_type>) + "'",
                                   "load it into a handle of its element type", make_error_code(errc::dtype_mismatch));
    }
    typename shared_ndarray<value_type>::shape_type s(shape.begin(), shape.end());
    auto fresh = shared_ndarray<value_type>::create(s, fortran ? order::fortran : order::c);
    if constexpr (cereal::traits::is_input_serializable<cereal::BinaryData<value_type*>, Archive>::value &&
                  !std::is_same_v<value_type, bool>) {
        ar(cereal::make_nvp("data", cereal::binary_data(fresh.data(), fresh.nbytes())));
    } else {
        std::vector<value_type> v;
        ar(cereal::make_nvp("data", v));
        if (v.size() != fresh.size()) {
            raise<serialization_error>("load", fresh.name(),
                                       "the archive holds " + std::to_string(v.size()) + " elements for shape " +
                                           shape_string(s),
                                       "the archive is damaged", make_error_code(errc::serialization));
        }
        std::copy(v.begin(), v.end(), fresh.begin());
    }
    if constexpr (H::static_rank == dynamic_rank) {
        a = H(fresh);
    } else {
        a = H(shared_ndarray<typename H::element_type>(fresh));
    }
}

} // namespace ndshm::detail

namespace ndshm {

template <class Archive, class T, std::enable_if_t<!detail::is_object_archive_v<Archive>, int> = 0>
void CEREAL_SAVE_FUNCTION_NAME(Archive& ar, const shared_ndarray<T>& a)
{
    detail::save_by_value(ar, a);
}
template <class Archive, class T, std::enable_if_t<!detail::is_object_archive_v<Archive>, int> = 0>
void CEREAL_LOAD_FUNCTION_NAME(Archive& ar, shared_ndarray<T>& a)
{
    detail::load_by_value(ar, a);
}
template <class Archive, class T, std::size_t N, std::enable_if_t<!detail::is_object_archive_v<Archive>, int> = 0>
void CEREAL_SAVE_FUNCTION_NAME(Archive& ar, const shared_tensor<T, N>& a)
{
    detail::save_by_value(ar, a);
}
template <class Archive, class T, std::size_t N, std::enable_if_t<!detail::is_object_archive_v<Archive>, int> = 0>
void CEREAL_LOAD_FUNCTION_NAME(Archive& ar, shared_tensor<T, N>& a)
{
    detail::load_by_value(ar, a);
}

} // namespace ndshm

#endif
