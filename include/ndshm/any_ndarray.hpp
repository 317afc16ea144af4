/// @file any_ndarray.hpp
/// `ndshm::attach_any`: attach a segment without knowing its element type.
#ifndef NDSHM_ANY_NDARRAY_HPP
#define NDSHM_ANY_NDARRAY_HPP

#include <complex>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "detail/config.hpp"
#include "shared_ndarray.hpp"
#include "shared_tensor.hpp"

namespace ndshm {

namespace detail {
/// Throws error: as<T>() asked segment `name`, attached read-only, for a writable handle.
[[noreturn, gnu::cold]] NDSHM_DECL void raise_read_only_as(const std::string& name);
} // namespace detail

/// A dtype-erased handle to an attached array segment. `as<T>()` gives a typed handle on the same
/// mapping (no copy); `visit(f)` calls `f` with the typed handle of the segment's own dtype.
class any_ndarray {
public:
    any_ndarray() = default;

    const std::string& name() const noexcept
    {
        static const std::string none;
        return m_map ? m_map->name() : none;
    }
    /// The segment's element type; float64 (NumPy's default dtype) for an empty handle.
    ndshm::dtype dtype() const noexcept { return m_info.type; }
    const shape_type& shape() const noexcept { return m_info.shape; }
    std::size_t size() const noexcept { return m_map ? m_info.size : 0; }
    std::size_t dimension() const noexcept { return m_info.shape.size(); }
    std::size_t nbytes() const noexcept { return m_map ? m_info.nbytes : 0; }
    bool fortran_order() const noexcept { return m_info.fortran_order; }
    bool read_only() const noexcept { return m_map && !m_map->writable(); }
    /// False for a segment NumPy (or another tool) made: no ndshm trailer.
    bool has_trailer() const noexcept { return m_map && m_map->get_trailer() != nullptr; }
    const void* data() const noexcept { return m_map ? m_map->base() + m_info.data_offset : nullptr; }
    bool empty() const noexcept { return !m_map; }

    /// The typed handle, sharing this mapping (an empty handle for an empty any_ndarray, whatever T).
    /// @throws dtype_mismatch if T is not the segment's dtype; error if T is not const and the
    /// mapping is read-only.
    template <class T>
    shared_ndarray<T> as() const
    {
        check_as<T>();
        return shared_ndarray<T>(m_map, m_info);
    }

    /// The fixed-rank typed handle, sharing this mapping.
    /// @throws as as<T>(); error if the array is not of rank N
    template <class T, std::size_t N>
    shared_tensor<T, N> as_tensor() const
    {
        check_as<T>();
        return shared_tensor<T, N>(m_map, m_info);
    }

    /// Drops this handle, which becomes empty.
    void reset() noexcept { *this = any_ndarray(); }

    any_ndarray(const any_ndarray&) = default;
    any_ndarray& operator=(const any_ndarray&) = default;
    /// A moved-from handle is empty in every observable way.
    any_ndarray(any_ndarray&& o) noexcept : m_map(std::move(o.m_map)), m_info(std::move(o.m_info))
    {
        o.m_info = detail::npy_info{};
    }
    any_ndarray& operator=(any_ndarray&& o) noexcept
    {
        if (this != &o) {
            m_map = std::move(o.m_map);
            m_info = std::move(o.m_info);
            o.m_map.reset();
            o.m_info = detail::npy_info{};
        }
        return *this;
    }

    /// Calls `f(shared_ndarray<const U>)` where U is the segment's element type, and returns its result
    /// (f is typically a generic lambda; every instantiation must return the same type).
    template <class F>
    decltype(auto) visit(F&& f) const
    {
        switch (m_info.type) {
        case dtype::bool_:
            return call<bool>(f);
        case dtype::int8:
            return call<std::int8_t>(f);
        case dtype::int16:
            return call<std::int16_t>(f);
        case dtype::int32:
            return call<std::int32_t>(f);
        case dtype::int64:
            return call<std::int64_t>(f);
        case dtype::uint8:
            return call<std::uint8_t>(f);
        case dtype::uint16:
            return call<std::uint16_t>(f);
        case dtype::uint32:
            return call<std::uint32_t>(f);
        case dtype::uint64:
            return call<std::uint64_t>(f);
        case dtype::float32:
            return call<float>(f);
        case dtype::float64:
            return call<double>(f);
        case dtype::complex64:
            return call<std::complex<float>>(f);
        case dtype::complex128:
            break;
        }
        return call<std::complex<double>>(f);
    }

private:
    friend any_ndarray attach_any(const std::string& name, const options& opt);

    template <class T>
    void check_as() const
    {
        if (!m_map) {
            return; // nothing to check: the typed handle is empty too
        }
        detail::check_dtype<T>("as", name(), m_info.type);
        if (!std::is_const_v<T> && read_only()) {
            detail::raise_read_only_as(name());
        }
    }

    template <class U, class F>
    decltype(auto) call(F& f) const
    {
        return f(shared_ndarray<const U>(m_map, m_info));
    }

    std::shared_ptr<detail::mapping> m_map;
    detail::npy_info m_info;
};

/// Attaches the array segment `name` whatever its dtype; inspect it with dtype() and shape(), then
/// take a typed handle with as<T>().
/// @throws not_found, permission_denied, format_error, error
NDSHM_DECL any_ndarray attach_any(const std::string& name, const options& opt = {});

} // namespace ndshm

#if NDSHM_DEFINITIONS
namespace ndshm::detail {

void raise_read_only_as(const std::string& name)
{
    raise<error>("as", name, "the segment was attached read-only", "ask for a read-only handle, as<const T>()",
                 make_error_code(errc::invalid_argument));
}

} // namespace ndshm::detail

namespace ndshm {

any_ndarray attach_any(const std::string& name, const options& opt)
{
    any_ndarray a;
    a.m_map = detail::attach_array_segment(name, opt, a.m_info);
    return a;
}

} // namespace ndshm
#endif // NDSHM_DEFINITIONS

#endif
