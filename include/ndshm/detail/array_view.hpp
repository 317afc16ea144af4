/// @file detail/array_view.hpp
/// The xtensor expression that `view()` returns: an xtensor container adaptor over the mapping
/// whose assignments write into the mapping in the array's own memory order.
///
/// Why a class of ndshm's own and not xtensor's adaptor as it is: an adaptor with a run-time layout
/// assigns an expression through a temporary and then takes over the temporary's shape and strides,
/// which are row-major, so `view = expr` on a Fortran-order segment would store C-order bytes; and a
/// strided view (which copies element by element through its own strides) is several times slower
/// than a container and, in C++20 mode, stores nothing at all for some expressions. `array_view`
/// derives from the adaptor, so every xtensor function sees a plain container with linear storage,
/// and only replaces assignment:
///
/// - if the right-hand side provably does not read the memory it writes (scalars, containers that do
///   not overlap the mapping, element-wise functions of those, and the view itself at the same
///   position), it is assigned straight into the mapping, as `xt::noalias` would, and a contiguous
///   container of the same layout and type is copied with memcpy;
/// - otherwise (reducers, views, generators, anything ndshm cannot see through) it is evaluated into
///   a temporary of the view's shape and layout first, then copied in.
///
/// A right-hand side of another shape is broadcast to the view's shape, as xtensor's views do;
/// assignment never resizes or rebinds the view.
#ifndef NDSHM_DETAIL_ARRAY_VIEW_HPP
#define NDSHM_DETAIL_ARRAY_VIEW_HPP

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <functional>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>

#include "xtensor_compat.hpp"

namespace ndshm::detail {

template <class T>
using buffer_type = xt::xbuffer_adaptor<T*, xt::no_ownership, std::allocator<std::remove_const_t<T>>>;

/// Shape of a dynamic-rank view (xtensor's small-vector: no allocation up to 4 dimensions).
using view_shape_type = xt::dynamic_shape<std::size_t>;

/// The adaptor behind a dynamic-rank view.
template <class T>
using dynamic_adaptor = xt::xarray_adaptor<buffer_type<T>, xt::layout_type::dynamic, view_shape_type>;

/// Memory order of a strided region: row-major, column-major, or neither (a sub-range of a
/// Fortran-order array, for example). Extents of 1 do not count: their strides are arbitrary.
template <class S, class St>
xt::layout_type contiguous_layout(const S& shape, const St& strides) noexcept
{
    const std::size_t n = shape.size();
    bool row = true;
    bool col = true;
    std::ptrdiff_t expect = 1;
    for (std::size_t k = n; k-- > 0;) {
        if (shape[k] != 1 && static_cast<std::ptrdiff_t>(strides[k]) != expect) {
            row = false;
        }
        expect *= static_cast<std::ptrdiff_t>(shape[k]);
    }
    expect = 1;
    for (std::size_t k = 0; k < n; ++k) {
        if (shape[k] != 1 && static_cast<std::ptrdiff_t>(strides[k]) != expect) {
            col = false;
        }
        expect *= static_cast<std::ptrdiff_t>(shape[k]);
    }
    return row ? xt::layout_type::row_major : (col ? xt::layout_type::column_major : xt::layout_type::dynamic);
}

template <class S1, class S2>
bool equal_extents(const S1& a, const S2& b) noexcept
{
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin());
}

/// True if `e` must be broadcast to `shape` to be assigned (xtensor assigns a scalar expression itself).
template <class E, class S>
bool needs_broadcast(const E& e, const S& shape)
{
    if constexpr (xt::is_xscalar<std::decay_t<E>>::value) {
        return false;
    } else {
        return !equal_extents(e.shape(), shape);
    }
}

template <class E, class = void>
struct has_expression_member : std::false_type {
};
template <class E>
struct has_expression_member<E, std::void_t<decltype(std::declval<const E&>().expression())>> : std::true_type {
};

template <class E>
struct is_xfunction : std::false_type {
};
template <class F, class... CT>
struct is_xfunction<xt::xfunction<F, CT...>> : std::true_type {
};

/// A container (xarray, xtensor, an adaptor, an ndshm view): its elements are storage()[0..size).
template <class E>
using is_container = xt::is_crtp_base_of<xt::xcontainer, E>;

/// What an assignment writes: the memory of the array it writes into ([lo, hi)), and the expression
/// doing the writing (`self`), which reads each element at the position it writes.
template <class V>
struct write_target {
    const V& self;
    const unsigned char* lo;
    const unsigned char* hi;
};

/// The target of an assignment into `v`, which writes (part of) `array`'s memory.
template <class V, class C>
write_target<V> target_of(const V& v, const C& array) noexcept
{
    const auto* lo = reinterpret_cast<const unsigned char*>(array.storage().data());
    return {v, lo, lo + array.storage().size() * sizeof(typename C::value_type)};
}

/// True unless `e` provably reads no element of `t` other than, when `elementwise`, the one at the
/// position being written. Conservative: an expression ndshm cannot see through counts as aliasing.
template <class V, class E>
bool may_alias(const write_target<V>& t, const E& e, bool elementwise)
{
    using D = std::decay_t<E>;
    if constexpr (xt::is_xscalar<D>::value || !xt::is_xexpression<D>::value) {
        return false;
    } else if (elementwise &&
               static_cast<const void*>(std::addressof(e)) == static_cast<const void*>(std::addressof(t.self))) {
        return false; // the target itself, read at the position being written
    } else if constexpr (is_xfunction<D>::value) {
        return std::apply([&](const auto&... args) { return (may_alias(t, args, elementwise) || ...); }, e.arguments());
    } else if constexpr (is_container<D>::value) {
        const auto* lo = reinterpret_cast<const unsigned char*>(e.storage().data());
        const auto* hi = lo + e.storage().size() * sizeof(typename D::value_type);
        if (lo == hi || hi <= t.lo || t.hi <= lo) {
            return false;
        }
        if constexpr (is_container<V>::value) {
            // Another container of the same elements at the same positions (a second view of the same
            // array): reading each before writing it is safe.
            return !(elementwise && lo == t.lo && std::is_same_v<typename D::value_type, typename V::value_type> &&
                     equal_extents(e.shape(), t.self.shape()) && equal_extents(e.strides(), t.self.strides()));
        } else {
            return true;
        }
    } else if constexpr (has_expression_member<D>::value) {
        return may_alias(t, e.expression(), false); // views, broadcasts, reducers: positions move
    } else {
        return true;
    }
}

// The lazy xtensor expression `l op r` (no evaluation), for the compound assignments.
#define NDSHM_BINARY_FN(name, op)                                                                                      \
    struct name {                                                                                                      \
        template <class L, class R>                                                                                    \
        auto operator()(const L& l, const R& r) const                                                                  \
        {                                                                                                              \
            return l op r;                                                                                             \
        }                                                                                                              \
    };
NDSHM_BINARY_FN(plus_fn, +)
NDSHM_BINARY_FN(minus_fn, -)
NDSHM_BINARY_FN(multiplies_fn, *)
NDSHM_BINARY_FN(divides_fn, /)
NDSHM_BINARY_FN(modulus_fn, %)
NDSHM_BINARY_FN(bit_and_fn, &)
NDSHM_BINARY_FN(bit_or_fn, |)
NDSHM_BINARY_FN(bit_xor_fn, ^)
#undef NDSHM_BINARY_FN

/// A view of an n-d array over memory ndshm manages (a segment's mapping). `A` is the xtensor adaptor
/// it extends; see the file comment for what differs from it (assignment only).
template <class A>
class array_view : public A {
public:
    using base_type = A;
    using value_type = typename A::value_type;
    using shape_type = typename A::shape_type;
    using strides_type = typename A::strides_type;
    static constexpr bool is_writable = !std::is_const_v<std::remove_reference_t<typename A::reference>>;

    using A::A;
    array_view(const array_view&) = default;
    array_view(array_view&&) noexcept = default;
    ~array_view() = default;

    /// Copies the elements of `o` into this view's memory (a view is not rebound by assignment).
    array_view& operator=(const array_view& o) { return assign_any(o); }
    array_view& operator=(array_view&& o) { return assign_any(o); }

    /// Evaluates `e` (broadcast to this view's shape) into the view's memory.
    template <class E>
    array_view& operator=(const xt::xexpression<E>& e)
    {
        return assign_any(e.derived_cast());
    }
    /// Sets every element to `v`.
    template <class E>
    xt::disable_xexpression<E, array_view&> operator=(const E& v)
    {
        writable_check();
        std::fill(this->storage().begin(), this->storage().end(), static_cast<value_type>(v));
        return *this;
    }

#define NDSHM_COMPOUND(op, fn)                                                                                         \
    template <class E>                                                                                                 \
    array_view& operator op(const xt::xexpression<E>& e)                                                               \
    {                                                                                                                  \
        return assign_any(fn{}(static_cast<const A&>(*this), e.derived_cast()));                                       \
    }                                                                                                                  \
    template <class E>                                                                                                 \
    xt::disable_xexpression<E, array_view&> operator op(const E& v)                                                    \
    {                                                                                                                  \
        writable_check();                                                                                              \
        combine_scalar(v, fn{});                                                                                       \
        return *this;                                                                                                  \
    }
    NDSHM_COMPOUND(+=, plus_fn)
    NDSHM_COMPOUND(-=, minus_fn)
    NDSHM_COMPOUND(*=, multiplies_fn)
    NDSHM_COMPOUND(/=, divides_fn)
    NDSHM_COMPOUND(%=, modulus_fn)
    NDSHM_COMPOUND(&=, bit_and_fn)
    NDSHM_COMPOUND(|=, bit_or_fn)
    NDSHM_COMPOUND(^=, bit_xor_fn)
#undef NDSHM_COMPOUND

    /// What `xt::noalias(v) = e` calls: the caller promises that `e` does not read `v`'s memory.
    template <class E>
    array_view& assign(const xt::xexpression<E>& e)
    {
        writable_check();
        const auto& d = e.derived_cast();
        if (needs_broadcast(d, this->shape())) {
            assign_direct(xt::broadcast(d, this->shape()));
        } else {
            assign_direct(d);
        }
        return *this;
    }

#define NDSHM_NOALIAS_COMPOUND(name, fn)                                                                               \
    template <class E>                                                                                                 \
    array_view& name(const xt::xexpression<E>& e)                                                                      \
    {                                                                                                                  \
        return assign(fn{}(static_cast<const A&>(*this), e.derived_cast()));                                           \
    }
    NDSHM_NOALIAS_COMPOUND(plus_assign, plus_fn)
    NDSHM_NOALIAS_COMPOUND(minus_assign, minus_fn)
    NDSHM_NOALIAS_COMPOUND(multiplies_assign, multiplies_fn)
    NDSHM_NOALIAS_COMPOUND(divides_assign, divides_fn)
    NDSHM_NOALIAS_COMPOUND(modulus_assign, modulus_fn)
    NDSHM_NOALIAS_COMPOUND(bit_and_assign, bit_and_fn)
    NDSHM_NOALIAS_COMPOUND(bit_or_assign, bit_or_fn)
    NDSHM_NOALIAS_COMPOUND(bit_xor_assign, bit_xor_fn)
#undef NDSHM_NOALIAS_COMPOUND

private:
    template <class A2, class E>
    friend void assign_unaliased(array_view<A2> v, const E& e);

    static constexpr void writable_check() noexcept
    {
        static_assert(is_writable, "ndshm: this view is read-only (a shared_ndarray<const T> or a const handle's "
                                   "view); assign through a writable handle's view()");
    }

    A& base() noexcept { return *this; }

    // `v += s` and the other compound assignments of a scalar: every element in memory order, as
    // xtensor's containers do, with the element converted back as xtensor converts it; the scalar read
    // once, before the first element changes (NumPy's `a += a[0, 0]`; xtensor's containers read it
    // again for every element, so `x += x(0, 0)` adds the doubled first element). An indexed loop
    // over the storage's pointer and a local copy of the scalar: xtensor's own loop, through the
    // adaptor's storage, took 2.11 ms for 64 MiB of doubles where this one takes 1.80 ms and the same
    // operation on an xt::xarray 1.95 ms (g++ 12 -O3, 2026-12-04).
    template <class E, class F>
    void combine_scalar(const E& v, F f)
    {
        const E s = v;
        value_type* p = this->storage().data();
        const std::size_t n = this->storage().size();
        for (std::size_t i = 0; i < n; ++i) {
            p[i] = static_cast<value_type>(f(p[i], s));
        }
    }

    template <class E>
    array_view& assign_any(const E& e)
    {
        writable_check();
        if (needs_broadcast(e, this->shape())) {
            return assign_same_shape(xt::broadcast(e, this->shape()));
        }
        return assign_same_shape(e);
    }

    template <class E>
    array_view& assign_same_shape(const E& e)
    {
        const auto target = target_of(*this, *this);
        if (!may_alias(target, e, true)) {
            assign_direct(e);
            return *this;
        }
        // e reads what it writes: evaluate it first, in this view's memory order where it has one.
        const xt::layout_type order = contiguous_layout(this->shape(), this->strides());
        if (order == xt::layout_type::column_major) {
            xt::xarray<value_type, xt::layout_type::column_major> tmp(e);
            assign_direct(tmp);
        } else {
            xt::xarray<value_type, xt::layout_type::row_major> tmp(e);
            assign_direct(tmp);
        }
        return *this;
    }

    // e has this view's shape and does not overlap it (or is it, position for position).
    template <class E>
    void assign_direct(const E& e)
    {
        using D = std::decay_t<E>;
        if constexpr (is_container<D>::value && std::is_same_v<typename D::value_type, value_type> &&
                      std::is_trivially_copyable_v<value_type>) {
            const xt::layout_type mine = contiguous_layout(this->shape(), this->strides());
            if (mine != xt::layout_type::dynamic && e.storage().size() == this->size() &&
                contiguous_layout(e.shape(), e.strides()) == mine) {
                if (this->size() != 0 && e.storage().data() != this->storage().data()) {
                    std::memcpy(this->storage().data(), e.storage().data(), this->size() * sizeof(value_type));
                }
                return;
            }
        }
        xt::noalias(base()) = e;
    }
};

/// Calls `run(q, n, stride)` for runs of elements that together cover the strided region at `p`
/// (extents `shape`, strides `strides` in elements) once each, in the order of the memory: a dimension
/// of negative stride walked from its other end, the dimension of the smallest stride innermost,
/// dimensions that continue each other merged, so a region made of contiguous runs (a row range of a
/// Fortran-order array, a column range of a C-order one, either reversed) is walked run by run with
/// stride 1, and a contiguous region in one run. Each run's stride is positive. For operations on each
/// element alone (fills, a scalar combined into every element): the order of the visits is not the
/// order of the indices.
template <class T, class S, class St, class Run>
void for_each_run(T* p, const S& shape, const St& strides, Run run)
{
    struct dim {
        std::size_t n;
        std::ptrdiff_t stride;
    };
    xt::svector<dim, 8> dims;
    for (std::size_t k = 0; k < shape.size(); ++k) {
        if (shape[k] == 0) {
            return;
        }
        if (shape[k] == 1) {
            continue; // the stride of an extent of 1 is arbitrary
        }
        const auto n = static_cast<std::size_t>(shape[k]);
        auto stride = static_cast<std::ptrdiff_t>(strides[k]);
        if (stride < 0) { // start from the element of lowest address
            p += stride * static_cast<std::ptrdiff_t>(n - 1);
            stride = -stride;
        }
        dims.push_back({n, stride});
    }
    std::sort(dims.begin(), dims.end(), [](const dim& a, const dim& b) { return a.stride < b.stride; });
    std::size_t out = 0;
    for (std::size_t k = 0; k < dims.size(); ++k) {
        if (out > 0 && dims[k].stride == dims[out - 1].stride * static_cast<std::ptrdiff_t>(dims[out - 1].n)) {
            dims[out - 1].n *= dims[k].n; // this dimension continues the previous one
        } else {
            dims[out++] = dims[k];
        }
    }
    dims.resize(out);
    if (dims.empty()) {
        run(p, std::size_t{1}, std::ptrdiff_t{1});
        return;
    }
    xt::svector<std::size_t, 8> index(dims.size(), 0);
    for (T* q = p;;) {
        run(q, dims[0].n, dims[0].stride);
        std::size_t k = 1;
        for (; k < dims.size(); ++k) { // the next run: an odometer over the outer dimensions
            q += dims[k].stride;
            if (++index[k] < dims[k].n) {
                break;
            }
            q -= dims[k].stride * static_cast<std::ptrdiff_t>(dims[k].n);
            index[k] = 0;
        }
        if (k == dims.size()) {
            return;
        }
    }
}

/// Sets every element of the strided region at `p` to `value`, in memory order (see for_each_run).
template <class T, class S, class St>
void fill_strided(T* p, const S& shape, const St& strides, const T& value)
{
    for_each_run(p, shape, strides, [&](T* q, std::size_t n, std::ptrdiff_t stride) {
        if (stride == 1) {
            std::fill_n(q, n, value);
        } else {
            for (std::size_t i = 0; i < n; ++i, q += stride) {
                *q = value;
            }
        }
    });
}

/// `xt::view(v, slices...)` of an array_view: xtensor's xview, whose assignments take xtensor's linear
/// path where the slice is contiguous (xtensor decides that at compile time from the layout, which for a
/// shared array is only known at run time), with the same aliasing rule as array_view.
template <class V>
class sliced_view : public V {
public:
    using base_type = V;
    using value_type = typename V::value_type;
    static constexpr bool is_writable = !std::is_const_v<std::remove_reference_t<typename V::reference>>;

    explicit sliced_view(V&& v) : V(std::move(v)) {}
    sliced_view(const sliced_view&) = default;
    sliced_view(sliced_view&&) noexcept = default;
    ~sliced_view() = default;

    sliced_view& operator=(const sliced_view& o) { return assign_any(o); }
    sliced_view& operator=(sliced_view&& o) { return assign_any(o); }
    template <class E>
    sliced_view& operator=(const xt::xexpression<E>& e)
    {
        return assign_any(e.derived_cast());
    }
    template <class E>
    xt::disable_xexpression<E, sliced_view&> operator=(const E& v)
    {
        static_assert(is_writable, "ndshm: this view is read-only");
        if constexpr (V::is_strided_view && is_writable) {
            // Walks the memory in the order of the strides, contiguous runs innermost. xview's own fill
            // walks in row-major index order, which in a Fortran-order array jumps a column per element.
            fill_strided(this->data() + this->data_offset(), this->shape(), this->strides(),
                         static_cast<value_type>(v));
        } else {
            V::operator=(static_cast<value_type>(v));
        }
        return *this;
    }

#define NDSHM_SLICED_COMPOUND(op, fn)                                                                                  \
    template <class E>                                                                                                 \
    sliced_view& operator op(const xt::xexpression<E>& e)                                                              \
    {                                                                                                                  \
        return assign_any(fn{}(static_cast<const V&>(*this), e.derived_cast()));                                       \
    }                                                                                                                  \
    template <class E>                                                                                                 \
    xt::disable_xexpression<E, sliced_view&> operator op(const E& v)                                                   \
    {                                                                                                                  \
        if constexpr (V::is_strided_view && is_writable) { /* in memory order, as the fill */                          \
            const E s = v;                                 /* read once, as array_view reads it */                     \
            for_each_run(this->data() + this->data_offset(), this->shape(), this->strides(),                           \
                         [&](value_type* q, std::size_t n, std::ptrdiff_t stride) {                                    \
                             if (stride == 1) {                                                                        \
                                 for (std::size_t i = 0; i < n; ++i) {                                                 \
                                     q[i] = static_cast<value_type>(fn{}(q[i], s));                                    \
                                 }                                                                                     \
                             } else {                                                                                  \
                                 for (std::size_t i = 0; i < n; ++i, q += stride) {                                    \
                                     *q = static_cast<value_type>(fn{}(*q, s)); /* as xtensor converts it */           \
                                 }                                                                                     \
                             }                                                                                         \
                         });                                                                                           \
        } else {                                                                                                       \
            V::operator op(v);                                                                                         \
        }                                                                                                              \
        return *this;                                                                                                  \
    }
    NDSHM_SLICED_COMPOUND(+=, plus_fn)
    NDSHM_SLICED_COMPOUND(-=, minus_fn)
    NDSHM_SLICED_COMPOUND(*=, multiplies_fn)
    NDSHM_SLICED_COMPOUND(/=, divides_fn)
    NDSHM_SLICED_COMPOUND(%=, modulus_fn)
    NDSHM_SLICED_COMPOUND(&=, bit_and_fn)
    NDSHM_SLICED_COMPOUND(|=, bit_or_fn)
    NDSHM_SLICED_COMPOUND(^=, bit_xor_fn)
#undef NDSHM_SLICED_COMPOUND

    /// What `xt::noalias(s) = e` calls: the caller promises that `e` does not read what it writes.
    template <class E>
    sliced_view& assign(const xt::xexpression<E>& e)
    {
        static_assert(is_writable, "ndshm: this view is read-only");
        const auto& d = e.derived_cast();
        if constexpr (xt::is_xscalar<E>::value) {
            return *this = d(); // a scalar: the fill in memory order
        } else if (needs_broadcast(d, this->shape())) {
            xt::noalias(base()) = xt::broadcast(d, this->shape());
        } else {
            xt::noalias(base()) = d;
        }
        return *this;
    }

#define NDSHM_SLICED_NOALIAS(name, fn)                                                                                 \
    template <class E>                                                                                                 \
    sliced_view& name(const xt::xexpression<E>& e)                                                                     \
    {                                                                                                                  \
        return assign(fn{}(static_cast<const V&>(*this), e.derived_cast()));                                           \
    }
    NDSHM_SLICED_NOALIAS(plus_assign, plus_fn)
    NDSHM_SLICED_NOALIAS(minus_assign, minus_fn)
    NDSHM_SLICED_NOALIAS(multiplies_assign, multiplies_fn)
    NDSHM_SLICED_NOALIAS(divides_assign, divides_fn)
    NDSHM_SLICED_NOALIAS(modulus_assign, modulus_fn)
    NDSHM_SLICED_NOALIAS(bit_and_assign, bit_and_fn)
    NDSHM_SLICED_NOALIAS(bit_or_assign, bit_or_fn)
    NDSHM_SLICED_NOALIAS(bit_xor_assign, bit_xor_fn)
#undef NDSHM_SLICED_NOALIAS

private:
    V& base() noexcept { return *this; }

    template <class E>
    sliced_view& assign_any(const E& e)
    {
        static_assert(is_writable, "ndshm: this view is read-only");
        if (needs_broadcast(e, this->shape())) {
            assign_same_shape(xt::broadcast(e, this->shape()));
        } else {
            assign_same_shape(e);
        }
        return *this;
    }

    template <class E>
    void assign_same_shape(const E& e)
    {
        if (!may_alias(target_of(*this, this->expression()), e, true)) {
            xt::noalias(base()) = e;
        } else {
            const xt::xarray<value_type> tmp(e); // e reads what it writes: evaluate it first
            xt::noalias(base()) = tmp;
        }
    }
};

/// Assigns `e`, of `v`'s shape, into `v` without looking for aliasing: for memory nothing else can
/// reference yet (a segment being created).
template <class A, class E>
void assign_unaliased(array_view<A> v, const E& e)
{
    v.assign_direct(e);
}

} // namespace ndshm::detail

namespace xt {

/// `xt::view` of a shared array's view: xtensor's view, with ndshm's assignment (see sliced_view).
template <class A, class... S>
inline auto view(ndshm::detail::array_view<A>& e, S&&... slices)
{
    using V = ndshm::detail::array_view<A>&;
    return ndshm::detail::sliced_view<decltype(xt::view<V, S...>(e, std::forward<S>(slices)...))>(
        xt::view<V, S...>(e, std::forward<S>(slices)...));
}
template <class A, class... S>
inline auto view(ndshm::detail::array_view<A>&& e, S&&... slices)
{
    using V = ndshm::detail::array_view<A>;
    return ndshm::detail::sliced_view<decltype(xt::view<V, S...>(std::move(e), std::forward<S>(slices)...))>(
        xt::view<V, S...>(std::move(e), std::forward<S>(slices)...));
}

} // namespace xt

#endif
