/// @file shared_ndarray.hpp
/// `ndshm::shared_ndarray<T>`: an n-d array in a named shared-memory segment, seen through xtensor.
#ifndef NDSHM_SHARED_NDARRAY_HPP
#define NDSHM_SHARED_NDARRAY_HPP

#include <algorithm>
#include <array>
#include <limits>
#include <cstddef>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "detail/npy.hpp"
#include "detail/segment_impl.hpp"
#include "detail/xtensor_compat.hpp"
#include "dtype.hpp"
#include "error.hpp"
#include "options.hpp"
#include "segment.hpp"

namespace ndshm {

/// Memory order of a created array.
enum class order {
    c,       ///< row-major (C order), the default
    fortran, ///< column-major; the header says fortran_order: True and NumPy sees the same layout
};

/// The shape of an array: one extent per dimension.
using shape_type = std::vector<std::size_t>;

class any_ndarray;
template <class T>
class shared_ndarray;

namespace detail {

/// Lets ndshm's own components (composite objects, channels, queues) build a shared_ndarray over a
/// region of a mapping they manage, and reach the mapping behind a handle.
struct array_access {
    /// A handle to `info`'s array at `info.data_offset` of `m`, sharing (and keeping alive) the mapping.
    template <class T>
    static shared_ndarray<T> make(std::shared_ptr<mapping> m, const npy_info& info)
    {
        return shared_ndarray<T>(std::move(m), info);
    }
    /// The mapping behind a handle (null for an empty handle).
    template <class T>
    static const std::shared_ptr<mapping>& mapping_of(const shared_ndarray<T>& a) noexcept
    {
        return a.m_map;
    }
};

/// Byte offset of the data in a segment ndshm creates: always 4096, the page-aligned start of the
/// format, which satisfies every alignment options::alignment may ask for.
inline std::size_t data_offset_for(const options& opt, const std::string& op)
{
    const std::size_t a = opt.alignment;
    if (a == 0 || (a & (a - 1)) != 0 || a > 4096) {
        raise<error>(op, opt.name, "options::alignment " + std::to_string(a) + " is not a power of two up to 4096",
                     "use 4096 (the default) or a smaller power of two", errno_code(EINVAL));
    }
    return 4096;
}

/// Creates a segment for an array, writes its header and trailer; not yet published.
inline std::shared_ptr<mapping> create_array_segment(const options& opt, dtype t, const shape_type& shape, bool fortran,
                                                     const std::string& op, npy_info& info)
{
    info.type = t;
    info.shape = shape;
    info.fortran_order = fortran;
    info.data_offset = data_offset_for(opt, op);
    if (shape.size() > npy_max_ndim) {
        raise<error>(op, opt.name, std::to_string(shape.size()) + " dimensions requested", "use at most 64",
                     errno_code(EINVAL));
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
                     errno_code(EINVAL));
    }
    write_trailer(*m, toff, kind_array, info.data_offset, info.nbytes);
    return m;
}

/// Opens a published array segment and parses it: a valid .npy, not a composite object.
inline std::shared_ptr<mapping> attach_array_segment(const std::string& name, const options& opt, npy_info& info)
{
    std::uint32_t kind = 0;
    auto m = open_npy_segment(opt, name, "attach", info, kind);
    if (kind == kind_object) {
        raise<format_error>("attach", name, "the segment holds a composite object, not an array",
                            "load it with ndshm::load<T>(name)", errno_code(EINVAL));
    }
    if (kind != 0 && kind != kind_array) {
        const bool known = kind == kind_channel || kind == kind_queue;
        const std::string what = kind == kind_channel ? "channel" : "queue";
        raise<format_error>("attach", name,
                            known ? "the segment is a " + what + ", not an array"
                                  : "the segment is of an unknown kind " + std::to_string(kind),
                            known ? std::string(kind == kind_channel ? "attach it with ndshm::channel<T>::attach"
                                                                     : "open it with ndshm::array_queue::open")
                                  : "use the ndshm version that made it",
                            errno_code(EINVAL));
    }
    return m;
}

} // namespace detail

/// A handle to an n-d array of T in a named shared-memory segment (see DESIGN and the README for the
/// segment format and lifetime rules).
///
/// - `create` and `from_array` make a new segment and own its name: the last owning handle in the
///   creating process unlinks it, unless `persist()` was called. Handles copied into a forked child
///   never unlink.
/// - `attach` maps an existing segment without copying and never owns it.
/// - Copies of a handle share one mapping; the mapping stays valid until the last copy is gone.
/// - `shared_ndarray<const T>` is a read-only handle: its attach maps the segment with PROT_READ.
///
/// T is bool, an integer type of 1, 2, 4 or 8 bytes, float, double, std::complex<float> or
/// std::complex<double>, optionally const.
template <class T>
class shared_ndarray {
    static_assert(is_element_type_v<T>,
                  "ndshm::shared_ndarray<T>: T must be bool, a fixed-width integer (int8_t..uint64_t), float, "
                  "double, std::complex<float> or std::complex<double> (optionally const)");

public:
    using element_type = T;
    using value_type = std::remove_const_t<T>;
    using size_type = std::size_t;
    using shape_type = ndshm::shape_type;
    /// The xtensor adaptor `view()` returns.
    using view_type = detail::view_type<T>;
    using const_view_type = detail::view_type<const T>;
    static constexpr bool is_read_only = std::is_const_v<T>;

    /// An empty handle: no segment, size 0.
    shared_ndarray() = default;

    /// A read-only handle from a writable one (shares the mapping).
    template <class U, class = std::enable_if_t<std::is_same_v<const U, T> && !std::is_same_v<U, T>>>
    shared_ndarray(const shared_ndarray<U>& o) // NOLINT(google-explicit-constructor): like T* to const T*
        : m_map(o.m_map), m_data(o.m_data), m_shape(o.m_shape), m_strides(o.m_strides), m_size(o.m_size),
          m_fortran(o.m_fortran)
    {
    }

    /// Creates a zero-filled array of `shape` in a new segment, owned by this process.
    /// @throws already_exists, permission_denied, out_of_space, error
    static shared_ndarray create(const shape_type& shape, const options& opt = {})
    {
        return create(shape, order::c, opt);
    }

    /// Creates a zero-filled array in C or Fortran order.
    static shared_ndarray create(const shape_type& shape, order ord, const options& opt = {})
    {
        static_assert(!is_read_only, "create a shared_ndarray<T> and convert it to shared_ndarray<const T>");
        detail::npy_info info;
        auto m = detail::create_array_segment(opt, dtype_of<T>, shape, ord == order::fortran, "create", info);
        m->publish();
        return shared_ndarray(std::move(m), info);
    }

    /// Creates a new segment holding a copy of an xtensor expression (evaluated straight into the
    /// segment, C order).
    template <class E>
    static shared_ndarray from_array(const xt::xexpression<E>& expr, const options& opt = {})
    {
        static_assert(!is_read_only, "create a shared_ndarray<T> and convert it to shared_ndarray<const T>");
        const auto& e = expr.derived_cast();
        const shape_type shape(e.shape().begin(), e.shape().end());
        detail::npy_info info;
        auto m = detail::create_array_segment(opt, dtype_of<T>, shape, false, "from_array", info);
        shared_ndarray a(std::move(m), info);
        a.view() = e;
        a.m_map->publish();
        return a;
    }

    /// Creates a new segment holding a copy of `prod(shape)` elements at `data` (C order).
    static shared_ndarray from_array(const value_type* data, const shape_type& shape, const options& opt = {})
    {
        static_assert(!is_read_only, "create a shared_ndarray<T> and convert it to shared_ndarray<const T>");
        detail::npy_info info;
        auto m = detail::create_array_segment(opt, dtype_of<T>, shape, false, "from_array", info);
        shared_ndarray a(std::move(m), info);
        if (info.nbytes != 0) {
            std::memcpy(a.m_data, data, info.nbytes);
        }
        a.m_map->publish();
        return a;
    }

    /// Attaches the segment `name` without copying; shape, dtype and order come from the segment.
    /// Waits up to options::ready_timeout for a segment that is still being written.
    /// @throws not_found, permission_denied, format_error (corrupt, truncated, unfinished, unsupported
    /// dtype), dtype_mismatch (names both dtypes), error
    static shared_ndarray attach(const std::string& name, const options& opt = {})
    {
        options o = opt;
        if constexpr (is_read_only) {
            o.read_only = true;
        } else if (opt.read_only) {
            detail::raise<error>("attach", name, "options::read_only asks for a read-only mapping of a writable handle",
                                 std::string("attach it as shared_ndarray<const ") + dtype_name(dtype_of<T>) +
                                     " element type> (for example shared_ndarray<const double>)",
                                 detail::errno_code(EINVAL));
        }
        detail::npy_info info;
        auto m = detail::attach_array_segment(name, o, info);
        check_dtype(name, info.type);
        return shared_ndarray(std::move(m), info);
    }

    /// The segment name to pass to other processes; empty for an empty handle.
    const std::string& name() const noexcept
    {
        static const std::string none;
        return m_map ? m_map->name() : none;
    }
    /// Extent of each dimension.
    const shape_type& shape() const noexcept { return m_shape; }
    /// Number of elements (the product of the shape; 0 for an empty handle).
    size_type size() const noexcept { return m_size; }
    /// Number of dimensions.
    size_type dimension() const noexcept { return m_shape.size(); }
    /// The element type stored in the segment.
    static constexpr ndshm::dtype dtype() noexcept { return dtype_of<T>; }
    /// True for a column-major (Fortran-order) array.
    bool fortran_order() const noexcept { return m_fortran; }
    /// True for a handle without a segment.
    bool empty() const noexcept { return !m_map; }
    explicit operator bool() const noexcept { return static_cast<bool>(m_map); }

    /// The first element, in the shared mapping.
    T* data() noexcept { return m_data; }
    const T* data() const noexcept { return m_data; }
    T* begin() noexcept { return m_data; }
    T* end() noexcept { return m_data + m_size; }
    const T* begin() const noexcept { return m_data; }
    const T* end() const noexcept { return m_data + m_size; }

    /// An xtensor adaptor over the mapping (no copy): assignment, math and reducers work on it.
    view_type view() { return detail::make_view<T>(m_data, m_size, view_shape(), m_fortran); }
    const_view_type view() const { return detail::make_view<const T>(m_data, m_size, view_shape(), m_fortran); }

    /// Element access by one index per dimension (unchecked, like xtensor).
    template <class... Idx>
    T& operator()(Idx... idx) noexcept
    {
        return m_data[offset(idx...)];
    }
    template <class... Idx>
    const T& operator()(Idx... idx) const noexcept
    {
        return m_data[offset(idx...)];
    }

    /// Hands the name over: no handle of this process unlinks it any more; it stays until
    /// ndshm::unlink(name) (or `ndshm rm`/`ndshm gc` never: persisted segments are kept by gc).
    void persist() noexcept
    {
        if (m_map) {
            m_map->persist();
        }
    }

    /// Drops this handle (the mapping goes when its last handle goes).
    void reset() noexcept { *this = shared_ndarray(); }

private:
    template <class U>
    friend class shared_ndarray;
    friend class any_ndarray;
    friend struct detail::array_access;

    shared_ndarray(std::shared_ptr<detail::mapping> m, const detail::npy_info& info)
        : m_map(std::move(m)), m_shape(info.shape), m_size(info.size), m_fortran(info.fortran_order)
    {
        m_data = reinterpret_cast<T*>(m_map->base() + info.data_offset);
        m_strides.assign(m_shape.size(), 1);
        const std::size_t n = m_shape.size();
        for (std::size_t k = 1; k < n; ++k) {
            if (m_fortran) {
                m_strides[k] = m_strides[k - 1] * m_shape[k - 1];
            } else {
                m_strides[n - 1 - k] = m_strides[n - k] * m_shape[n - k];
            }
        }
    }

    static void check_dtype(const std::string& name, ndshm::dtype found)
    {
        if (found != dtype_of<T>) {
            detail::raise<dtype_mismatch>("attach", name,
                                          std::string("the segment holds ") + dtype_name(found) + " ('" +
                                              dtype_descr(found) + "'), not " + dtype_name(dtype_of<T>) + " ('" +
                                              dtype_descr(dtype_of<T>) + "') as requested",
                                          std::string("attach it with the element type for ") + dtype_name(found) +
                                              ", or use ndshm::attach_any to inspect it",
                                          detail::errno_code(EINVAL));
        }
    }

    shape_type view_shape() const { return m_map ? m_shape : shape_type{0}; }

    // xtensor's rule: indices address the last dimensions; extra leading indices are ignored.
    template <class... Idx>
    std::size_t offset(Idx... idx) const noexcept
    {
        constexpr std::size_t n = sizeof...(Idx);
        const std::array<std::size_t, n> index{static_cast<std::size_t>(idx)...};
        const std::size_t d = m_strides.size();
        std::size_t off = 0;
        for (std::size_t i = 0; i < n; ++i) {
            if (i + d >= n) {
                off += index[i] * m_strides[i + d - n];
            }
        }
        return off;
    }

    std::shared_ptr<detail::mapping> m_map;
    T* m_data = nullptr;
    shape_type m_shape;
    std::vector<std::size_t> m_strides;
    size_type m_size = 0;
    bool m_fortran = false;
};

} // namespace ndshm

#endif
