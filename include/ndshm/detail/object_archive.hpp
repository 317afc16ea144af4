/// @file detail/object_archive.hpp
/// The cereal archive pair of composite objects. Everything cereal can serialise goes into the blob
/// with fixed-width sizes; xt::xarray, xt::xtensor and shared_ndarray do not: the output archive
/// records each as an array of the object's table of contents and writes only its index into the
/// blob, and the input archive turns that index back into the array (a zero-copy view for
/// shared_ndarray, a copy for xtensor containers). The input archive treats the blob as hostile:
/// every read is bounds-checked and every container size is checked against the bytes left. Running
/// the pair over a whole object (serialize_object, decode_object) and the checks that a type can be
/// shared or loaded close the file.
#ifndef NDSHM_DETAIL_OBJECT_ARCHIVE_HPP
#define NDSHM_DETAIL_OBJECT_ARCHIVE_HPP

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include <cereal/cereal.hpp>

#include "../dtype.hpp"
#include "../error.hpp"
#include "array_cereal.hpp"
#include "array_handle.hpp"
#include "config.hpp"
#include "object_format.hpp"
#include "segment_impl.hpp"
#include "xtensor_compat.hpp"

namespace ndshm::detail {

/// The blob's index of an empty shared_ndarray handle.
inline constexpr std::uint64_t no_array = ~std::uint64_t(0);

/// A container size larger than the blob bytes left plus this many is refused before anything is
/// allocated: every element of a legitimate container takes at least one byte of the blob, except
/// elements of empty types, of which a container may hold this many more.
inline constexpr std::uint64_t blob_size_slack = 65536;

/// cereal's wrappers that its archives handle themselves rather than through a serialisation function.
template <class T>
struct is_cereal_wrapper : std::false_type {
};
template <class B>
struct is_cereal_wrapper<cereal::base_class<B>> : std::true_type {
};
template <class B>
struct is_cereal_wrapper<cereal::virtual_base_class<B>> : std::true_type {
};
template <class T>
struct is_cereal_wrapper<cereal::DeferredData<T>> : std::true_type {
};

template <class Member, class Archive>
constexpr bool check_saveable()
{
    constexpr bool ok = is_cereal_wrapper<Member>::value ||
                        cereal::traits::is_output_serializable<Member, Archive>::value;
    static_assert(ok, "ndshm: cereal cannot serialise a member of this object (its type is `Member` in this note). "
                      "Give that type a member `template <class Archive> void serialize(Archive& ar) { ar(m1, m2, "
                      "...); }` (or a save/load pair, member or free function) that lists its members, and check "
                      "that exactly one is visible. ndshm/object.hpp includes cereal's serialisers for the std "
                      "types; xt::xarray, xt::xtensor and ndshm::shared_ndarray members are stored as arrays.");
    return ok;
}

template <class Member, class Archive>
constexpr bool check_loadable_member()
{
    constexpr bool ok = is_cereal_wrapper<Member>::value ||
                        cereal::traits::is_input_serializable<Member, Archive>::value;
    static_assert(ok, "ndshm: cereal can save a member of this object but not load it (its type is `Member` in "
                      "this note): give that type a load function to match its save, or one serialize()");
    return ok;
}

/// Collects an object's blob and its arrays. Arrays are not copied: the archive records where their
/// bytes are, and the caller copies them once into the object's segment or file.
class object_output_archive : public cereal::OutputArchive<object_output_archive, cereal::AllowEmptyClassElision> {
public:
    object_output_archive() : cereal::OutputArchive<object_output_archive, cereal::AllowEmptyClassElision>(this) {}

    /// `ar(members...)` in a type's serialize() or save(): every member's type is checked first, so that
    /// one cereal cannot serialise, at any depth of the object, stops at ndshm's message (the compiler's
    /// note names the member's type as `Member`) rather than at cereal's.
    template <class... Types>
    object_output_archive& operator()(Types&&... args)
    {
        if constexpr ((check_saveable<std::decay_t<Types>, object_output_archive>() && ...)) {
            cereal::OutputArchive<object_output_archive, cereal::AllowEmptyClassElision>::operator()(
                std::forward<Types>(args)...);
        }
        return *this;
    }

    void saveBinary(const void* data, std::size_t size)
    {
        const auto* p = static_cast<const unsigned char*>(data);
        m_blob.insert(m_blob.end(), p, p + size);
    }

    /// Records an array whose `nbytes` bytes are at `data` (they must stay there until the object is
    /// written) and writes its index into the blob. The same bytes recorded twice with the same type
    /// and shape are stored once, so handles that alias stay aliased after loading.
    /// Only shared_ndarray handles can alias: `dedupe` is false for xtensor containers, which own
    /// their memory (and an object may hold many thousands of them).
    NDSHM_DECL void add_array(dtype type, std::vector<std::size_t> shape, bool fortran, const void* data,
                              std::size_t nbytes, bool dedupe);

    void write_index(std::uint64_t index) { saveBinary(&index, sizeof index); }

    /// Keeps a temporary copy (of an array that was not contiguous) alive until the object is written.
    void keep(std::shared_ptr<const void> p) { m_keep.push_back(std::move(p)); }

    const std::vector<unsigned char>& blob() const noexcept { return m_blob; }
    std::vector<array_desc>& descs() noexcept { return m_descs; }
    const std::vector<const void*>& data() const noexcept { return m_data; }

private:
    std::vector<unsigned char> m_blob;
    std::vector<array_desc> m_descs;
    std::vector<const void*> m_data;
    std::unordered_map<const void*, std::uint64_t> m_index;
    std::vector<std::shared_ptr<const void>> m_keep;
};

/// Reads an object back from its validated table of contents and its (untrusted) blob.
class object_input_archive : public cereal::InputArchive<object_input_archive, cereal::AllowEmptyClassElision> {
public:
    object_input_archive(const parsed_object& obj, std::shared_ptr<mapping> map, std::string name)
        : cereal::InputArchive<object_input_archive, cereal::AllowEmptyClassElision>(this), m_obj(obj),
          m_map(std::move(map)), m_name(std::move(name)), m_pos(obj.blob), m_end(obj.blob + obj.blob_bytes)
    {
        // The table of contents and the blob are populated already (parse_object_image).
        m_populated = static_cast<std::size_t>(m_end - m_map->base()) / 4096 * 4096;
    }

    /// `ar(members...)` in a type's serialize() or load(): see object_output_archive::operator().
    template <class... Types>
    object_input_archive& operator()(Types&&... args)
    {
        if constexpr ((check_loadable_member<std::decay_t<Types>, object_input_archive>() && ...)) {
            cereal::InputArchive<object_input_archive, cereal::AllowEmptyClassElision>::operator()(
                std::forward<Types>(args)...);
        }
        return *this;
    }

    void loadBinary(void* data, std::size_t size)
    {
        if (size > remaining()) {
            fail("the blob ends " + std::to_string(size - remaining()) + " bytes early");
        }
        if (size != 0) {
            std::memcpy(data, m_pos, size);
        }
        m_pos += size;
    }

    /// Reads `size` bytes holding bools, refusing any byte other than 0 or 1 (anything else would be
    /// an invalid bool).
    void load_bools(void* data, std::size_t size)
    {
        if (size > remaining()) {
            fail("the blob ends " + std::to_string(size - remaining()) + " bytes early");
        }
        for (std::size_t i = 0; i < size; ++i) {
            if (m_pos[i] > 1) {
                fail("a bool holds the byte " + std::to_string(m_pos[i]));
            }
        }
        loadBinary(data, size);
    }

    /// Refuses a container size that the bytes left cannot hold.
    void check_count(std::uint64_t n)
    {
        if (n > remaining() + blob_size_slack) {
            fail("a container claims " + std::to_string(n) + " elements but only " + std::to_string(remaining()) +
                 " bytes of the blob are left");
        }
    }

    std::size_t remaining() const noexcept { return static_cast<std::size_t>(m_end - m_pos); }

    /// The table-of-contents entry `index` names; serialization_error if there is none.
    const object_entry& entry(std::uint64_t index)
    {
        if (index >= m_obj.entries.size()) {
            fail("the blob refers to array " + std::to_string(index) + " but the object holds " +
                 std::to_string(m_obj.entries.size()));
        }
        return m_obj.entries[static_cast<std::size_t>(index)];
    }

    const std::shared_ptr<mapping>& map() const noexcept { return m_map; }
    const std::string& name() const noexcept { return m_name; }
    npy_info& scratch_info() noexcept { return m_info; }

    /// Maps the pages up to byte `end` of the mapping before an array is copied out of them, 4 MiB at
    /// a time: arrays lie in the order they are loaded, so a few calls cover thousands of small arrays
    /// that would otherwise take a page fault each.
    void populate_to(std::size_t end) noexcept
    {
        if (end <= m_populated) {
            return;
        }
        const std::size_t page = 4096;
        std::size_t upto = std::max(end, m_populated + (std::size_t(4) << 20));
        upto = std::min((upto + page - 1) / page * page, m_map->size() / page * page);
        if (upto > m_populated) {
            prefault(m_map->base() + m_populated, upto - m_populated, false);
        }
        m_populated = std::max(upto, end);
    }

    [[noreturn]] NDSHM_DECL void fail(const std::string& why) const;

    /// dtype_mismatch for an array member whose element type is not the stored one.
    [[noreturn]] NDSHM_DECL void wrong_dtype(dtype stored, dtype wanted, std::uint64_t index) const;

private:
    const parsed_object& m_obj;
    std::shared_ptr<mapping> m_map;
    std::string m_name;
    const unsigned char* m_pos;
    const unsigned char* m_end;
    npy_info m_info;
    std::size_t m_populated = 0; // bytes of the mapping populated so far (a page multiple)
};

// Arithmetic values, names, sizes and bulk data: the blob's primitive encodings.

template <class T>
std::enable_if_t<std::is_arithmetic_v<T>> CEREAL_SAVE_FUNCTION_NAME(object_output_archive& ar, const T& t)
{
    ar.saveBinary(std::addressof(t), sizeof t);
}

template <class T>
std::enable_if_t<std::is_arithmetic_v<T>> CEREAL_LOAD_FUNCTION_NAME(object_input_archive& ar, T& t)
{
    if constexpr (std::is_same_v<T, bool>) {
        ar.load_bools(std::addressof(t), sizeof t);
    } else {
        ar.loadBinary(std::addressof(t), sizeof t);
    }
}

template <class T>
void CEREAL_SAVE_FUNCTION_NAME(object_output_archive& ar, const cereal::NameValuePair<T>& t)
{
    ar(t.value);
}

template <class T>
void CEREAL_LOAD_FUNCTION_NAME(object_input_archive& ar, cereal::NameValuePair<T>& t)
{
    ar(t.value);
}

// Sizes are 8 bytes whatever CEREAL_SIZE_TYPE is.
template <class T>
void CEREAL_SAVE_FUNCTION_NAME(object_output_archive& ar, const cereal::SizeTag<T>& t)
{
    const auto n = static_cast<std::uint64_t>(t.size);
    ar.saveBinary(&n, sizeof n);
}

template <class T>
void CEREAL_LOAD_FUNCTION_NAME(object_input_archive& ar, cereal::SizeTag<T>& t)
{
    std::uint64_t n = 0;
    ar.loadBinary(&n, sizeof n);
    ar.check_count(n);
    t.size = static_cast<std::decay_t<decltype(t.size)>>(n);
}

template <class T>
void CEREAL_SAVE_FUNCTION_NAME(object_output_archive& ar, const cereal::BinaryData<T>& bd)
{
    ar.saveBinary(bd.data, static_cast<std::size_t>(bd.size));
}

template <class T>
void CEREAL_LOAD_FUNCTION_NAME(object_input_archive& ar, cereal::BinaryData<T>& bd)
{
    if constexpr (std::is_same_v<std::remove_cv_t<std::remove_pointer_t<T>>, bool>) {
        ar.load_bools(bd.data, static_cast<std::size_t>(bd.size)); // std::array<bool, N>, std::valarray<bool>
    } else {
        ar.loadBinary(bd.data, static_cast<std::size_t>(bd.size));
    }
}

// Arrays: recorded in the table of contents, never in the blob.

template <class V>
constexpr void check_array_element()
{
    static_assert(is_element_type_v<V>,
                  "ndshm: an xtensor container in a shared object must hold bool, a fixed-width integer, float, "
                  "double, std::complex<float> or std::complex<double>; store other element types in a std::vector "
                  "(it goes into the blob)");
}

/// Records an xtensor container: its own bytes if they are contiguous in C or Fortran order, else
/// a C-order copy kept alive by the archive.
template <class C>
void save_xcontainer(object_output_archive& ar, const C& a)
{
    using value_type = typename C::value_type;
    check_array_element<value_type>();
    std::vector<std::size_t> shape(a.shape().begin(), a.shape().end());
    const std::size_t nbytes = a.size() * sizeof(value_type);
    const xt::layout_type l = a.layout();
    if (l == xt::layout_type::row_major || l == xt::layout_type::column_major) {
        ar.add_array(dtype_of<value_type>, std::move(shape), l == xt::layout_type::column_major && a.dimension() > 1,
                     a.data(), nbytes, false);
        return;
    }
    auto copy = std::make_shared<xt::xarray<value_type, xt::layout_type::row_major>>(a);
    const void* data = copy->data();
    ar.keep(std::move(copy));
    ar.add_array(dtype_of<value_type>, std::move(shape), false, data, nbytes, false);
}

/// Copies array `e` of the object into an xtensor container (resized to its shape). `Rank` is the
/// container's fixed rank, or 0 for xt::xarray.
template <std::size_t Rank, class C>
void load_xcontainer(object_input_archive& ar, C& a)
{
    using value_type = typename C::value_type;
    check_array_element<value_type>();
    std::uint64_t index = 0;
    ar.loadBinary(&index, sizeof index);
    typename C::shape_type shape{};
    if (index == no_array) { // saved as an empty shared_ndarray handle: an empty container
        if constexpr (Rank == 0) {
            shape = typename C::shape_type{0};
        }
        a.resize(shape);
        return;
    }
    const object_entry& e = ar.entry(index);
    if (e.type != dtype_of<value_type>) {
        ar.wrong_dtype(e.type, dtype_of<value_type>, index);
    }
    if constexpr (Rank != 0) {
        if (e.ndim != Rank) {
            ar.fail("array " + std::to_string(index) + " has " + std::to_string(e.ndim) +
                    " dimensions, but the member is an xt::xtensor of rank " + std::to_string(Rank));
        }
    } else {
        shape.resize(e.ndim);
    }
    for (std::size_t k = 0; k < e.ndim; ++k) {
        shape[k] = e.extent(k);
    }
    const xt::layout_type stored = e.fortran ? xt::layout_type::column_major : xt::layout_type::row_major;
    if constexpr (C::static_layout == xt::layout_type::dynamic) {
        a.resize(shape, stored);
    } else {
        a.resize(shape);
    }
    if (e.size == 0) {
        return;
    }
    ar.populate_to(e.offset + e.nbytes);
    // Bools are read as bytes and compared with zero: a stored byte other than 0 or 1 is no valid bool.
    using stored_type = std::conditional_t<std::is_same_v<value_type, bool>, std::uint8_t, value_type>;
    const auto* src = reinterpret_cast<const stored_type*>(ar.map()->base() + e.offset);
    const bool same_order = a.layout() == stored || e.ndim <= 1;
    if (same_order) {
        if constexpr (std::is_same_v<value_type, bool>) {
            for (std::size_t i = 0; i < e.size; ++i) {
                a.data()[i] = src[i] != 0;
            }
        } else {
            std::memcpy(a.data(), src, e.nbytes);
        }
    } else {
        a = xt::adapt<xt::layout_type::dynamic>(src, e.size, xt::no_ownership(), e.shape(), stored);
    }
}

template <class EC, xt::layout_type L, class SC, class Tag>
void CEREAL_SAVE_FUNCTION_NAME(object_output_archive& ar, const xt::xarray_container<EC, L, SC, Tag>& a)
{
    save_xcontainer(ar, a);
}

template <class EC, xt::layout_type L, class SC, class Tag>
void CEREAL_LOAD_FUNCTION_NAME(object_input_archive& ar, xt::xarray_container<EC, L, SC, Tag>& a)
{
    load_xcontainer<0>(ar, a);
}

template <class EC, std::size_t N, xt::layout_type L, class Tag>
void CEREAL_SAVE_FUNCTION_NAME(object_output_archive& ar, const xt::xtensor_container<EC, N, L, Tag>& a)
{
    save_xcontainer(ar, a);
}

template <class EC, std::size_t N, xt::layout_type L, class Tag>
void CEREAL_LOAD_FUNCTION_NAME(object_input_archive& ar, xt::xtensor_container<EC, N, L, Tag>& a)
{
    static_assert(N != 0, "ndshm: an xt::xtensor of rank 0 cannot be a member of a shared object; use xt::xarray");
    load_xcontainer<N>(ar, a);
}

template <class T>
void CEREAL_SAVE_FUNCTION_NAME(object_output_archive& ar, const shared_ndarray<T>& a)
{
    if (a.empty()) {
        ar.write_index(no_array);
        return;
    }
    ar.add_array(dtype_of<T>, a.shape(), a.fortran_order(), a.data(), a.size() * sizeof(T), true);
}

/// A shared_ndarray member becomes a view of its array in the object's mapping: no copy.
template <class T>
void CEREAL_LOAD_FUNCTION_NAME(object_input_archive& ar, shared_ndarray<T>& a)
{
    std::uint64_t index = 0;
    ar.loadBinary(&index, sizeof index);
    if (index == no_array) {
        a = shared_ndarray<T>();
        return;
    }
    const object_entry& e = ar.entry(index);
    if (e.type != dtype_of<T>) {
        ar.wrong_dtype(e.type, dtype_of<T>, index);
    }
    if (!std::is_const_v<T> && !ar.map()->writable()) {
        raise<error>("load", ar.name(),
                     std::string("the object is mapped read-only, but a member is a writable shared_ndarray<") +
                         dtype_name(dtype_of<T>) + " element type>",
                     "declare the member shared_ndarray<const T>, or load without options::read_only",
                     errno_code(EINVAL));
    }
    npy_info& info = ar.scratch_info(); // reused: its shape keeps its capacity from array to array
    info.type = e.type;
    info.shape.resize(e.ndim);
    for (std::size_t k = 0; k < e.ndim; ++k) {
        info.shape[k] = e.extent(k);
    }
    info.fortran_order = e.fortran;
    info.data_offset = e.offset;
    info.size = e.size;
    info.nbytes = e.nbytes;
    a = array_access::make<T>(ar.map(), info);
}

/// A shared_tensor member: stored as a shared_ndarray; on load, an array of another rank is refused.
template <class T, std::size_t N>
void CEREAL_SAVE_FUNCTION_NAME(object_output_archive& ar, const shared_tensor<T, N>& a)
{
    CEREAL_SAVE_FUNCTION_NAME(ar, shared_ndarray<T>(a));
}
template <class T, std::size_t N>
void CEREAL_LOAD_FUNCTION_NAME(object_input_archive& ar, shared_tensor<T, N>& a)
{
    shared_ndarray<T> any;
    CEREAL_LOAD_FUNCTION_NAME(ar, any);
    if (!any.empty() && any.dimension() != N) {
        ar.fail("an array has " + std::to_string(any.dimension()) +
                " dimensions, but the member is a shared_tensor of "
                "rank " +
                std::to_string(N));
    }
    a = shared_tensor<T, N>(any);
}

} // namespace ndshm::detail

CEREAL_REGISTER_ARCHIVE(ndshm::detail::object_output_archive)
CEREAL_REGISTER_ARCHIVE(ndshm::detail::object_input_archive)
CEREAL_SETUP_ARCHIVE_TRAITS(ndshm::detail::object_input_archive, ndshm::detail::object_output_archive)

namespace ndshm::detail {

// Running the archive pair over a whole object, for share, load and the object files (file.hpp).

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

} // namespace ndshm::detail

#if NDSHM_DEFINITIONS
namespace ndshm::detail {

void object_output_archive::add_array(dtype type, std::vector<std::size_t> shape, bool fortran, const void* data,
                                      std::size_t nbytes, bool dedupe)
{
    if (dedupe && data != nullptr) {
        const auto it = m_index.find(data);
        if (it != m_index.end()) {
            const array_desc& d = m_descs[it->second];
            if (d.type == type && d.shape == shape && d.fortran == fortran) {
                write_index(it->second);
                return;
            }
        }
    }
    const std::uint64_t index = m_descs.size();
    array_desc d;
    d.type = type;
    d.shape = std::move(shape);
    d.fortran = fortran;
    d.nbytes = nbytes;
    d.stored_bytes = nbytes;
    m_descs.push_back(std::move(d));
    m_data.push_back(data);
    if (dedupe && data != nullptr) {
        m_index.emplace(data, index);
    }
    write_index(index);
}

void object_input_archive::fail(const std::string& why) const
{
    raise<serialization_error>("load", m_name, "the blob does not decode as the requested type: " + why,
                               "load it as the type it was shared or saved as (with the same serialize "
                               "functions), or recreate it",
                               make_error_code(errc::serialization));
}

void object_input_archive::wrong_dtype(dtype stored, dtype wanted, std::uint64_t index) const
{
    raise<dtype_mismatch>("load", m_name,
                          "array " + std::to_string(index) + " holds " + dtype_name(stored) + " ('" +
                              dtype_descr(stored) + "'), but the member asks for " + dtype_name(wanted) + " ('" +
                              dtype_descr(wanted) + "')",
                          "declare the member with the element type it was shared with", errno_code(EINVAL));
}

} // namespace ndshm::detail
#endif // NDSHM_DEFINITIONS

#endif
