/// @file dtype.hpp
/// The element types ndshm stores, their NumPy descr strings, and the mapping from C++ types.
#ifndef NDSHM_DTYPE_HPP
#define NDSHM_DTYPE_HPP

#include <complex>
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>

namespace ndshm {

/// Element type of a segment. Every value is little-endian in the segment.
enum class dtype : std::uint8_t {
    bool_,
    int8,
    int16,
    int32,
    int64,
    uint8,
    uint16,
    uint32,
    uint64,
    float32,
    float64,
    complex64,
    complex128,
};

/// Size of one element of `t` in bytes.
constexpr std::size_t itemsize(dtype t) noexcept
{
    switch (t) {
    case dtype::bool_:
    case dtype::int8:
    case dtype::uint8:
        return 1;
    case dtype::int16:
    case dtype::uint16:
        return 2;
    case dtype::int32:
    case dtype::uint32:
    case dtype::float32:
        return 4;
    case dtype::int64:
    case dtype::uint64:
    case dtype::float64:
    case dtype::complex64:
        return 8;
    case dtype::complex128:
        return 16;
    }
    return 0;
}

/// NumPy's name for `t`: "float64", "int32", "bool", ...
constexpr const char* dtype_name(dtype t) noexcept
{
    switch (t) {
    case dtype::bool_:
        return "bool";
    case dtype::int8:
        return "int8";
    case dtype::int16:
        return "int16";
    case dtype::int32:
        return "int32";
    case dtype::int64:
        return "int64";
    case dtype::uint8:
        return "uint8";
    case dtype::uint16:
        return "uint16";
    case dtype::uint32:
        return "uint32";
    case dtype::uint64:
        return "uint64";
    case dtype::float32:
        return "float32";
    case dtype::float64:
        return "float64";
    case dtype::complex64:
        return "complex64";
    case dtype::complex128:
        return "complex128";
    }
    return "unknown";
}

/// The `.npy` descr of `t`: "<f8", "|u1", "|b1", "<c16", ...
constexpr const char* dtype_descr(dtype t) noexcept
{
    switch (t) {
    case dtype::bool_:
        return "|b1";
    case dtype::int8:
        return "|i1";
    case dtype::int16:
        return "<i2";
    case dtype::int32:
        return "<i4";
    case dtype::int64:
        return "<i8";
    case dtype::uint8:
        return "|u1";
    case dtype::uint16:
        return "<u2";
    case dtype::uint32:
        return "<u4";
    case dtype::uint64:
        return "<u8";
    case dtype::float32:
        return "<f4";
    case dtype::float64:
        return "<f8";
    case dtype::complex64:
        return "<c8";
    case dtype::complex128:
        return "<c16";
    }
    return "";
}

namespace detail {

template <class T, class = void>
struct dtype_of_impl {
};

template <>
struct dtype_of_impl<bool> {
    static constexpr dtype value = dtype::bool_;
};
template <>
struct dtype_of_impl<float> {
    static constexpr dtype value = dtype::float32;
};
template <>
struct dtype_of_impl<double> {
    static constexpr dtype value = dtype::float64;
};
template <>
struct dtype_of_impl<std::complex<float>> {
    static constexpr dtype value = dtype::complex64;
};
template <>
struct dtype_of_impl<std::complex<double>> {
    static constexpr dtype value = dtype::complex128;
};

template <std::size_t Size, bool Signed>
struct integer_dtype;
template <>
struct integer_dtype<1, true> {
    static constexpr dtype value = dtype::int8;
};
template <>
struct integer_dtype<2, true> {
    static constexpr dtype value = dtype::int16;
};
template <>
struct integer_dtype<4, true> {
    static constexpr dtype value = dtype::int32;
};
template <>
struct integer_dtype<8, true> {
    static constexpr dtype value = dtype::int64;
};
template <>
struct integer_dtype<1, false> {
    static constexpr dtype value = dtype::uint8;
};
template <>
struct integer_dtype<2, false> {
    static constexpr dtype value = dtype::uint16;
};
template <>
struct integer_dtype<4, false> {
    static constexpr dtype value = dtype::uint32;
};
template <>
struct integer_dtype<8, false> {
    static constexpr dtype value = dtype::uint64;
};

// Every integer type maps by size and signedness, so `long` and `long long` both store as int64.
// Plain `char` (signedness is platform-defined) and the character types are left out on purpose.
template <class T>
struct dtype_of_impl<
    T, std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool> && !std::is_same_v<T, char> &&
                        !std::is_same_v<T, wchar_t> && !std::is_same_v<T, char16_t> && !std::is_same_v<T, char32_t>>>
    : integer_dtype<sizeof(T), std::is_signed_v<T>> {
};

template <class T, class = void>
struct has_dtype : std::false_type {
};
template <class T>
struct has_dtype<T, std::void_t<decltype(dtype_of_impl<T>::value)>> : std::true_type {
};

} // namespace detail

/// True when T (ignoring const) is an element type ndshm can store.
template <class T>
inline constexpr bool is_element_type_v = detail::has_dtype<std::remove_cv_t<T>>::value;

/// The dtype of C++ type T: `dtype_of<double> == dtype::float64`.
template <class T>
inline constexpr dtype dtype_of = detail::dtype_of_impl<std::remove_cv_t<T>>::value;

} // namespace ndshm

#endif
