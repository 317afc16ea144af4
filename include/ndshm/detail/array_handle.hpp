/// @file detail/array_handle.hpp
/// What `shared_ndarray<T>` (any rank) and `shared_tensor<T, N>` (rank N) have in common: the handle's
/// state, its factories (over detail/array_segment.hpp), element access and the view.
#ifndef NDSHM_DETAIL_ARRAY_HANDLE_HPP
#define NDSHM_DETAIL_ARRAY_HANDLE_HPP

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <initializer_list>
#include <iterator>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#ifndef _WIN32
#include <sys/resource.h>
#include <unistd.h>
#endif

#include "../dtype.hpp"
#include "../error.hpp"
#include "../options.hpp"
#include "array_index.hpp"
#include "array_segment.hpp"
#include "array_core.hpp"
#include "array_view.hpp"
#include "config.hpp"
#include "npy.hpp"
#include "segment_impl.hpp"
#include "sys.hpp"

namespace ndshm {

/// Memory order of a created array.
enum class order {
    c,       ///< row-major (C order), the default
    fortran, ///< column-major; the header says fortran_order: True and NumPy sees the same layout
};

/// The shape of an array: one extent per dimension.
using shape_type = std::vector<std::size_t>;

/// The rank of a `shared_ndarray`: known only at run time.
inline constexpr std::size_t dynamic_rank = static_cast<std::size_t>(-1);

class any_ndarray;
template <class T>
class shared_ndarray;
template <class T, std::size_t N>
class shared_tensor;

namespace detail {

#if defined(NDSHM_ENABLE_ASSERT) || defined(XTENSOR_ENABLE_ASSERT)
/// operator() checks its indices like at() (NDSHM_ENABLE_ASSERT or XTENSOR_ENABLE_ASSERT is defined).
inline constexpr bool checked_access = true;
#else
inline constexpr bool checked_access = false;
#endif

/// Lets ndshm's own components (composite objects, channels, queues) build a handle over a region of
/// a mapping they manage, and reach the mapping behind a handle.
struct array_access {
    /// A handle to `info`'s array at `info.data_offset` of `m`, sharing (and keeping alive) the mapping.
    template <class T>
    static shared_ndarray<T> make(std::shared_ptr<mapping> m, const npy_info& info)
    {
        return shared_ndarray<T>(std::move(m), info);
    }
    /// The mapping behind a handle (null for an empty handle).
    template <class H>
    static const std::shared_ptr<mapping>& mapping_of(const H& a) noexcept
    {
        return a.m_map;
    }
};

template <class T, std::size_t N>
struct rank_traits {
    using shape_type = std::array<std::size_t, N>;
    using view_type = array_view<xt::xtensor_adaptor<buffer_type<T>, N, xt::layout_type::dynamic>>;
    static shape_type from(const std::vector<std::size_t>& s)
    {
        shape_type r{};
        std::copy(s.begin(), s.end(), r.begin());
        return r;
    }
};
template <class T>
struct rank_traits<T, dynamic_rank> {
    using shape_type = ndshm::shape_type;
    using view_type = array_view<dynamic_adaptor<T>>;
    static shape_type from(const std::vector<std::size_t>& s) { return s; }
};

/// The state and the members shared by shared_ndarray<T> (N == dynamic_rank) and shared_tensor<T, N>.
/// `Derived` is the handle type the factory functions return.
template <class Derived, class T, std::size_t N>
class array_base {
    static_assert(is_element_type_v<T>,
                  "ndshm: the element type must be bool, a fixed-width integer (int8_t..uint64_t), float, double, "
                  "std::complex<float> or std::complex<double> (optionally const)");
    using traits = rank_traits<T, N>;
    using const_traits = rank_traits<const T, N>;

public:
    using element_type = T;
    using value_type = std::remove_const_t<T>;
    using size_type = std::size_t;
    using reference = T&;
    using const_reference = const T&;
    using pointer = T*;
    using const_pointer = const T*;
    using iterator = T*;
    using const_iterator = const T*;
    /// One extent per dimension: std::vector for shared_ndarray, std::array<size_t, N> for shared_tensor.
    using shape_type = typename traits::shape_type;
    /// The xtensor expression view() returns: a container adaptor over the mapping (no copy).
    using view_type = typename traits::view_type;
    using const_view_type = typename const_traits::view_type;
    static constexpr bool is_read_only = std::is_const_v<T>;
    /// The rank fixed at compile time, or dynamic_rank.
    static constexpr std::size_t static_rank = N;

    /// Creates a zero-filled array of `shape` in a new segment, owned by this process.
    /// @throws already_exists, permission_denied, out_of_space, error
    static Derived create(const shape_type& shape, const options& opt = {}) { return create(shape, order::c, opt); }

    /// Creates a zero-filled array in C or Fortran order.
    /// @throws already_exists, permission_denied, out_of_space, error
    static Derived create(const shape_type& shape, order ord, const options& opt = {})
    {
        static_assert(!is_read_only, "create a handle of non-const T and convert it to one of const T");
        npy_info info;
        auto m = create_published_array(opt, dtype_of<T>, shape.data(), shape.size(), ord == order::fortran, info);
        return Derived(std::move(m), info);
    }

    /// Creates a new segment holding a copy of an xtensor expression, evaluated straight into the
    /// segment (C order).
    /// @throws as create; error if a fixed-rank handle is given an expression of another rank
    template <class E>
    static Derived from_array(const xt::xexpression<E>& expr, const options& opt = {})
    {
        static_assert(!is_read_only, "create a handle of non-const T and convert it to one of const T");
        const auto& e = expr.derived_cast();
        const std::vector<std::size_t> shape(e.shape().begin(), e.shape().end());
        if (N != dynamic_rank && shape.size() != N) {
            raise_expression_rank(opt.name, shape.size(), N);
        }
        npy_info info;
        auto m = create_array_segment(opt, dtype_of<T>, shape, false, "from_array", info);
        Derived a(std::move(m), info);
        // A fresh segment: nothing the expression reads can be in it.
        assign_unaliased(a.view(), e);
        publish_array(*a.m_map, info);
        return a;
    }

    /// Creates a new segment holding a copy of `prod(shape)` elements at `data` (C order).
    /// @throws as create
    static Derived from_array(const value_type* data, const shape_type& shape, const options& opt = {})
    {
        static_assert(!is_read_only, "create a handle of non-const T and convert it to one of const T");
        npy_info info;
        auto m = create_handle_segment(opt, dtype_of<T>, shape.data(), shape.size(), false, "from_array", info);
        Derived a(std::move(m), info);
        if (info.nbytes != 0) {
            std::memcpy(a.m_data, data, info.nbytes);
        }
        publish_array(*a.m_map, info);
        return a;
    }

    /// Attaches the segment `name` without copying; shape, dtype and order come from the segment.
    /// Waits up to options::ready_timeout for a segment that is still being written.
    /// @throws not_found, permission_denied, format_error (corrupt, truncated, unfinished, unsupported
    /// dtype), dtype_mismatch (names both dtypes), error (a fixed-rank handle and a segment of another
    /// rank: names both)
    static Derived attach(const std::string& name, const options& opt = {})
    {
        npy_info info;
        auto m = attach_array_as(name, opt, is_read_only, dtype_of<T>, info);
        return Derived(std::move(m), info);
    }

    /// The segment name to pass to other processes; empty for an empty handle.
    const std::string& name() const noexcept { return m_map ? m_map->name() : no_name(); }
    /// Extent of each dimension (empty, or all zero for a fixed rank, for an empty handle).
    const shape_type& shape() const noexcept { return m_shape; }
    /// Distance in elements between neighbours along each dimension (C or Fortran order).
    const shape_type& strides() const noexcept { return m_strides; }
    /// Number of elements (the product of the shape; 0 for an empty handle).
    size_type size() const noexcept { return m_size; }
    /// Bytes of array data.
    size_type nbytes() const noexcept { return m_size * sizeof(T); }
    /// Number of dimensions (0 for an empty shared_ndarray; always N for a shared_tensor).
    size_type dimension() const noexcept { return m_shape.size(); }
    /// The element type stored in the segment.
    static constexpr ndshm::dtype dtype() noexcept { return dtype_of<T>; }
    /// True for a column-major (Fortran-order) array.
    bool fortran_order() const noexcept { return m_fortran; }
    /// True for a handle without a segment (default-constructed, moved from, or reset).
    bool empty() const noexcept { return !m_map; }
    explicit operator bool() const noexcept { return static_cast<bool>(m_map); }

    /// The first element, in the shared mapping (null for an empty handle).
    T* data() noexcept { return m_data; }
    const T* data() const noexcept { return m_data; }
    /// The elements in memory order (C or Fortran, as the segment says).
    T* begin() noexcept { return m_data; }
    T* end() noexcept { return m_data + m_size; }
    const T* begin() const noexcept { return m_data; }
    const T* end() const noexcept { return m_data + m_size; }
    const T* cbegin() const noexcept { return m_data; }
    const T* cend() const noexcept { return m_data + m_size; }

    /// An xtensor adaptor over the mapping (no copy): assignment, math and reducers work on it as on
    /// a container of the same shape and layout. An empty handle gives an empty view.
    view_type view() { return make_view<T>(); }
    const_view_type view() const { return make_view<const T>(); }

    /// Element access by one index per dimension, unchecked (like xtensor: extra leading indices are
    /// ignored, missing leading ones are 0). Checked like at() when NDSHM_ENABLE_ASSERT or
    /// XTENSOR_ENABLE_ASSERT is defined.
    template <class... Idx>
    T& operator()(Idx... idx) noexcept(!checked_access)
    {
        if constexpr (checked_access) {
            check_index(name(), m_shape, idx...);
        }
        return m_data[offset(idx...)];
    }
    template <class... Idx>
    const T& operator()(Idx... idx) const noexcept(!checked_access)
    {
        if constexpr (checked_access) {
            check_index(name(), m_shape, idx...);
        }
        return m_data[offset(idx...)];
    }

    /// Checked element access: exactly one index per dimension, each in range.
    /// @throws std::out_of_range naming the indices and the shape
    template <class... Idx>
    T& at(Idx... idx)
    {
        check_index(name(), m_shape, idx...);
        return m_data[offset(idx...)];
    }
    template <class... Idx>
    const T& at(Idx... idx) const
    {
        check_index(name(), m_shape, idx...);
        return m_data[offset(idx...)];
    }

    /// Element access by a sequence of indices, for an index whose length is known only at run time
    /// (xtensor's `element`): unchecked and aligned to the last dimensions like operator(), checked
    /// like at() when NDSHM_ENABLE_ASSERT or XTENSOR_ENABLE_ASSERT is defined.
    template <class It>
    T& element(It first, It last) noexcept(!checked_access)
    {
        return m_data[range_offset("element", first, last)];
    }
    template <class It>
    const T& element(It first, It last) const noexcept(!checked_access)
    {
        return m_data[range_offset("element", first, last)];
    }

    /// `a[index]` with a container of indices (std::vector, std::array, ...) or a braced list
    /// (`a[{1, 2}]`) is element(begin, end); `a[i]` is `a(i)`. As in xtensor, and as unchecked.
    template <class S, std::enable_if_t<!std::is_integral_v<S>, int> = 0>
    T& operator[](const S& index) noexcept(!checked_access)
    {
        return element(std::begin(index), std::end(index));
    }
    template <class S, std::enable_if_t<!std::is_integral_v<S>, int> = 0>
    const T& operator[](const S& index) const noexcept(!checked_access)
    {
        return element(std::begin(index), std::end(index));
    }
    template <class I>
    T& operator[](std::initializer_list<I> index) noexcept(!checked_access)
    {
        return element(index.begin(), index.end());
    }
    template <class I>
    const T& operator[](std::initializer_list<I> index) const noexcept(!checked_access)
    {
        return element(index.begin(), index.end());
    }
    T& operator[](size_type i) noexcept(!checked_access) { return (*this)(i); }
    const T& operator[](size_type i) const noexcept(!checked_access) { return (*this)(i); }

    /// True if `idx...` is one index per dimension, each in range: what at() checks, without throwing.
    template <class... Idx>
    bool in_bounds(Idx... idx) const noexcept
    {
        return indices_in_range(m_shape, idx...);
    }

    /// Extent of dimension `axis`.
    /// @throws std::out_of_range if the array has no such dimension
    size_type shape(size_type axis) const
    {
        if (axis >= m_shape.size()) {
            throw_bad_axis(name(), std::vector<std::size_t>(m_shape.begin(), m_shape.end()), axis);
        }
        return m_shape[axis];
    }

    /// Sets every element to `value` (nothing for an empty handle).
    void fill(const value_type& value) noexcept
    {
        static_assert(!is_read_only, "fill through a writable handle");
        std::fill(m_data, m_data + m_size, value);
    }

    /// Gives the array another shape with the same number of elements, in place: the segment's header
    /// is rewritten, so every attach from now on (in any process) sees the new shape. Handles that
    /// exist already, in this process or another, keep the shape they had (xtensor's `reshape` of a
    /// view is the way to see one array in two shapes without changing it). Do not reshape one segment
    /// from two processes at once.
    /// @throws error if the number of elements differs or the handle is read-only or empty
    void reshape(const shape_type& new_shape)
    {
        static_assert(!is_read_only, "reshape through a writable handle");
        if (!m_map) {
            raise<error>("reshape", "", "the handle is empty", "reshape a handle of a segment",
                         make_error_code(errc::invalid_argument));
        }
        npy_info info = current_info();
        rewrite_shape(*m_map, info, to_vector(new_shape));
        m_shape = new_shape;
        compute_strides();
    }

    /// A new array of `new_shape` (larger or smaller, same rank, same order) in a new segment owned by
    /// this process, holding this array's elements where the two shapes overlap and zero elsewhere.
    /// This array and its segment are not changed: grow by replacing the handle, and pass the new name
    /// on (a segment cannot grow in place: its size is fixed when it is created). Of an empty handle:
    /// a new zero-filled array of `new_shape`.
    /// @throws as create(); error if the rank differs
    Derived resized(const shape_type& new_shape, const options& opt = {}) const
    {
        if constexpr (N == dynamic_rank) {
            if (m_map && new_shape.size() != m_shape.size()) {
                raise_resized_rank(name(), new_shape, m_shape);
            }
        }
        using writable = typename Derived::template rebind<value_type>;
        auto r = writable::create(new_shape, m_fortran ? order::fortran : order::c, opt);
        if (m_map) {
            copy_common<value_type>(m_data, m_shape, m_strides, r.data(), r.shape(), r.strides());
        }
        return Derived(r);
    }

    /// A copy of the elements in this process's own memory.
    xt::xarray<value_type> copy() const { return xt::xarray<value_type>(view()); }

    /// Pins the array's pages in RAM (mlock): they are never swapped out until unpin() or until the
    /// last handle of the mapping in this process goes. Pinning applies to the mapping, which this
    /// process's handles of the segment share.
    /// @throws out_of_space naming RLIMIT_MEMLOCK when the limit of locked memory is too small,
    /// permission_denied when locking is not permitted
    void pin() const
    {
        if (m_map && nbytes() != 0 && sys().mlock(m_data, nbytes()) != 0) {
            raise_pin_error("pin", name(), errno, nbytes());
        }
    }
    /// Undoes pin() (munlock).
    void unpin() const
    {
        if (m_map && nbytes() != 0 && sys().munlock(m_data, nbytes()) != 0) {
            raise_pin_error("unpin", name(), errno, nbytes());
        }
    }
    /// Writes the array's changed pages to the file behind it and waits (msync MS_SYNC): for an array
    /// in a file on disk (the directory backend, map_npy). Costs nothing for a segment in memory.
    /// @throws error if the kernel reports a write error
    void flush() const
    {
        if (!m_map || nbytes() == 0) {
            return;
        }
        // msync wants a page-aligned start: the data of every array ndshm maps starts on a page boundary
        // of its mapping, but arrays inside an object or a channel slot may not.
        const auto page = static_cast<std::uintptr_t>(page_size());
        const auto begin = reinterpret_cast<std::uintptr_t>(m_data) / page * page;
        const auto end = reinterpret_cast<std::uintptr_t>(m_data) + nbytes();
        if (retry_eintr([&] { return sys().msync(reinterpret_cast<void*>(begin), end - begin, MS_SYNC); }) != 0) {
            raise_pin_error("flush", name(), errno, nbytes());
        }
    }

    /// Hands the name over: no handle of this process unlinks it any more; it stays until
    /// ndshm::unlink(name) (`ndshm gc` keeps persisted segments).
    void persist() noexcept
    {
        if (m_map) {
            m_map->persist();
        }
    }

    /// Drops this handle, which becomes empty (the mapping goes when its last handle goes).
    void reset() noexcept { clear(); }

protected:
    template <class, class, std::size_t>
    friend class array_base;
    friend struct array_access;

    array_base() = default;
    array_base(const array_base&) = default;
    array_base& operator=(const array_base&) = default;
    /// A moved-from handle is empty in every observable way.
    array_base(array_base&& o) noexcept
        : m_map(std::move(o.m_map)), m_data(o.m_data), m_shape(std::move(o.m_shape)), m_strides(std::move(o.m_strides)),
          m_size(o.m_size), m_fortran(o.m_fortran)
    {
        o.clear();
    }
    array_base& operator=(array_base&& o) noexcept
    {
        if (this != &o) {
            m_map = std::move(o.m_map);
            m_data = o.m_data;
            m_shape = std::move(o.m_shape);
            m_strides = std::move(o.m_strides);
            m_size = o.m_size;
            m_fortran = o.m_fortran;
            o.clear();
        }
        return *this;
    }
    ~array_base() = default;

    /// A handle on `info`'s array in `m`. A fixed-rank handle refuses an array of another rank.
    array_base(std::shared_ptr<mapping> m, const npy_info& info)
    {
        if (!m) {
            return; // an empty handle (of an empty any_ndarray, say)
        }
        if constexpr (N != dynamic_rank) {
            if (info.shape.size() != N) {
                raise_segment_rank(m->name(), info.shape, N);
            }
        }
        m_size = info.size;
        m_fortran = info.fortran_order;
        m_data = reinterpret_cast<T*>(m->base() + info.data_offset);
        if constexpr (N == dynamic_rank) {
            dynamic_layout(info.shape, m_fortran, m_shape, m_strides);
        } else {
            m_shape = traits::from(info.shape);
            compute_strides();
        }
        m_map = std::move(m);
    }

    /// Shares `o`'s mapping (a conversion between handle types; the caller has checked the rank).
    template <class D2, class U, std::size_t M>
    explicit array_base(const array_base<D2, U, M>& o)
        : m_map(o.m_map), m_data(o.m_data), m_shape(convert_shape(o.m_shape)), m_size(o.m_size), m_fortran(o.m_fortran)
    {
        compute_strides();
    }

    npy_info current_info() const
    {
        npy_info info;
        info.type = dtype_of<value_type>;
        info.shape.assign(m_shape.begin(), m_shape.end());
        info.fortran_order = m_fortran;
        info.data_offset = static_cast<std::size_t>(reinterpret_cast<const unsigned char*>(m_data) - m_map->base());
        info.size = m_size;
        info.nbytes = nbytes();
        return info;
    }

    void clear() noexcept
    {
        m_map.reset();
        m_data = nullptr;
        m_shape = shape_type{};
        m_strides = shape_type{};
        m_size = 0;
        m_fortran = false;
    }

    std::shared_ptr<mapping> m_map;
    T* m_data = nullptr;
    shape_type m_shape{};
    shape_type m_strides{}; // in elements
    size_type m_size = 0;
    bool m_fortran = false;

private:
    static std::vector<std::size_t> to_vector(const shape_type& s) { return {s.begin(), s.end()}; }

    template <class S>
    static shape_type convert_shape(const S& s)
    {
        if constexpr (std::is_same_v<S, shape_type>) {
            return s;
        } else {
            shape_type r{};
            if constexpr (N == dynamic_rank) {
                r.assign(s.begin(), s.end());
            } else {
                std::copy(s.begin(), s.end(), r.begin());
            }
            return r;
        }
    }

    void compute_strides()
    {
        if constexpr (N == dynamic_rank) {
            contiguous_strides(m_shape, m_fortran, m_strides);
        } else {
            fill_contiguous_strides(m_shape, m_fortran, m_strides);
        }
    }

    template <class U>
    typename rank_traits<U, N>::view_type make_view() const
    {
        using V = typename rank_traits<U, N>::view_type;
        const auto layout = m_fortran ? xt::layout_type::column_major : xt::layout_type::row_major;
        if constexpr (N == dynamic_rank) {
            if (!m_map) { // an empty 1-d view, not a 0-d one (which would hold one element)
                return V(buffer_type<U>(nullptr, 0), typename V::shape_type{0}, layout);
            }
            return V(buffer_type<U>(m_data, m_size), typename V::shape_type(m_shape.begin(), m_shape.end()), layout);
        } else {
            return V(buffer_type<U>(m_data, m_size), m_shape, layout);
        }
    }

    // The offset of element(first, last), by the same rule as offset() below.
    template <class It>
    std::size_t range_offset([[maybe_unused]] const char* call, It first, It last) const noexcept(!checked_access)
    {
        static_assert(std::is_integral_v<typename std::iterator_traits<It>::value_type>,
                      "ndshm: array indices must be integers");
        if constexpr (checked_access) {
            check_index_range(call, name(), m_shape, first, last);
        }
        const auto n = static_cast<std::size_t>(std::distance(first, last));
        const std::size_t d = m_strides.size();
        if (n > d) {
            std::advance(first, static_cast<typename std::iterator_traits<It>::difference_type>(n - d));
        }
        std::size_t off = 0;
        for (std::size_t k = n < d ? d - n : 0; first != last; ++first, ++k) {
            off += static_cast<std::size_t>(*first) * m_strides[k];
        }
        return off;
    }

    // xtensor's rule: indices address the last dimensions; extra leading indices are ignored.
    template <class... Idx>
    std::size_t offset(Idx... idx) const noexcept
    {
        constexpr std::size_t n = sizeof...(Idx);
        if constexpr (n == 0) {
            return 0;
        } else {
            const std::size_t index[n] = {static_cast<std::size_t>(idx)...};
            const std::size_t d = m_strides.size();
            std::size_t off = 0;
            if (n == d) {
                for (std::size_t i = 0; i < n; ++i) {
                    off += index[i] * m_strides[i];
                }
                return off;
            }
            for (std::size_t i = 0; i < n; ++i) {
                if (i + d >= n) {
                    off += index[i] * m_strides[i + d - n];
                }
            }
            return off;
        }
    }
};

} // namespace detail
} // namespace ndshm

#endif
