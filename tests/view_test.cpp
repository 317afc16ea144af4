// view(): every xtensor operation through a handle's view gives the same elements, in the same memory
// order, as the same operation on an xt::xarray of the same shape and layout, in C and Fortran order,
// whatever the language standard (the suite builds in C++17 and C++20).
#include <ndshm/shared_ndarray.hpp>
#include <ndshm/shared_tensor.hpp>

#include <catch2/catch.hpp>
#include <xtensor/xbuilder.hpp>
#include <xtensor/xmanipulation.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xview.hpp>

#include <complex>
#include <cstdint>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

using ndshm::shared_ndarray;

namespace {

template <class T, xt::layout_type L>
using xarr = xt::xarray<T, L>;

/// A deterministic, non-trivial pattern of `n` values.
template <class T>
std::vector<T> pattern(std::size_t n, int salt = 0)
{
    std::vector<T> v(n);
    for (std::size_t i = 0; i < n; ++i) {
        v[i] = static_cast<T>((static_cast<int>(i) * 7 + salt) % 23 + 1);
    }
    return v;
}

/// Runs `op` on a fresh array of `shape` in `ord` through view() and on an xarray of the same layout,
/// both starting from the same values, and checks that the elements and their memory order agree.
template <class T, xt::layout_type L, class Op>
void same_as_xarray(const ndshm::shape_type& shape, Op op)
{
    const auto ord = L == xt::layout_type::column_major ? ndshm::order::fortran : ndshm::order::c;
    auto a = shared_ndarray<T>::create(shape, ord);
    xarr<T, L> x = xarr<T, L>::from_shape(shape);
    const auto init = pattern<T>(a.size(), 3);
    std::copy(init.begin(), init.end(), a.begin());
    std::copy(init.begin(), init.end(), x.data()); // memory order, as into a.begin()
    REQUIRE(std::equal(a.begin(), a.end(), x.data()));

    op(a.view(), x);

    REQUIRE(x.size() == a.size());
    CHECK(std::equal(a.begin(), a.end(), x.data())); // memory order
    CHECK(bool(a.view() == x));                      // element by index
}

// Not Catch sections: a helper's SECTION has one source location, so Catch would enter it for the first
// call of a test case only.
template <class T, class Op>
void in_both_orders(const ndshm::shape_type& shape, Op op)
{
    INFO("C order");
    same_as_xarray<T, xt::layout_type::row_major>(shape, op);
    INFO("Fortran order");
    same_as_xarray<T, xt::layout_type::column_major>(shape, op);
}

} // namespace

TEST_CASE("view(): assigning containers and adaptors stores every element in the array's order", "[view]")
{
    const ndshm::shape_type s{4, 5};
    const auto src = pattern<double>(20, 1);
    in_both_orders<double>(s, [&](auto v, auto& x) {
        v = xt::adapt(src, s);
        x = xt::adapt(src, s);
    });
    in_both_orders<double>(s, [&](auto v, auto& x) {
        const xt::xarray<double> c = xt::adapt(src, s);
        v = c;
        x = c;
    });
    in_both_orders<double>(s, [&](auto v, auto& x) {
        const xt::xarray<double, xt::layout_type::column_major> f = xt::adapt(src, s);
        v = f;
        x = f;
    });
    in_both_orders<double>(s, [&](auto v, auto& x) {
        const xt::xarray<float> c = xt::cast<float>(xt::adapt(src, s)); // another value type
        v = c;
        x = c;
    });
}

TEST_CASE("view(): expressions, scalars and broadcasting", "[view]")
{
    const ndshm::shape_type s{3, 4, 5};
    const auto src = pattern<double>(60, 2);
    in_both_orders<double>(s, [&](auto v, auto& x) {
        v = 2.0 * xt::adapt(src, s) + 1.0;
        x = 2.0 * xt::adapt(src, s) + 1.0;
    });
    in_both_orders<double>(s, [&](auto v, auto& x) {
        v = 7.5;
        x.fill(7.5);
    });
    in_both_orders<double>(s, [&](auto v, auto& x) {
        v = xt::arange<double>(5); // broadcast along the leading axes
        x = xt::broadcast(xt::arange<double>(5), s);
    });
    in_both_orders<double>(s, [&](auto v, auto& x) {
        xt::noalias(v) = xt::adapt(src, s) * 3.0;
        xt::noalias(x) = xt::adapt(src, s) * 3.0;
    });
    in_both_orders<double>(s, [&](auto v, auto& x) {
        xt::noalias(v) += xt::adapt(src, s);
        xt::noalias(x) += xt::adapt(src, s);
    });
}

TEST_CASE("view(): compound assignment with scalars and expressions", "[view]")
{
    const ndshm::shape_type s{6, 7};
    const auto src = pattern<double>(42, 5);
    in_both_orders<double>(s, [&](auto v, auto& x) {
        v += 1.0;
        x += 1.0;
        v *= 2.0;
        x *= 2.0;
        v -= 0.5;
        x -= 0.5;
        v /= 4.0;
        x /= 4.0;
    });
    in_both_orders<double>(s, [&](auto v, auto& x) {
        v += xt::adapt(src, s);
        x += xt::adapt(src, s);
        v -= 2.0 * xt::adapt(src, s);
        x -= 2.0 * xt::adapt(src, s);
        v *= xt::adapt(src, s);
        x *= xt::adapt(src, s);
        v /= xt::adapt(src, s) + 1.0;
        x /= xt::adapt(src, s) + 1.0;
    });
    const auto isrc = pattern<std::int32_t>(42, 9);
    in_both_orders<std::int32_t>(s, [&](auto v, auto& x) {
        v %= 5;
        x %= 5;
        v |= xt::adapt(isrc, s);
        x |= xt::adapt(isrc, s);
        v &= 13;
        x &= 13;
        v ^= xt::adapt(isrc, s);
        x ^= xt::adapt(isrc, s);
        v %= xt::adapt(isrc, s);
        x %= xt::adapt(isrc, s);
    });
    // A scalar of another type: computed in the common type, converted back to the element's type as
    // xtensor converts it (truncated, wrapped).
    in_both_orders<std::int32_t>(s, [&](auto v, auto& x) {
        v += 1.5;
        x += 1.5;
        v *= -2.5;
        x *= -2.5;
    });
    in_both_orders<std::uint8_t>(s, [&](auto v, auto& x) {
        v += 300;
        x += 300;
        v -= 7;
        x -= 7;
    });
    in_both_orders<std::complex<double>>(s, [&](auto v, auto& x) {
        v *= 2.0;
        x *= 2.0;
        v += std::complex<double>(1.0, -1.0);
        x += std::complex<double>(1.0, -1.0);
    });
}

TEST_CASE("view(): a scalar read from the array itself is read once, as NumPy reads a[0, 0]", "[view]")
{
    // xtensor's containers read such a scalar again for every element: on an xt::xarray,
    // x += x(0, 0) adds the doubled first element to all the others.
    for (const auto ord : {ndshm::order::c, ndshm::order::fortran}) {
        auto a = shared_ndarray<double>::create({2, 2}, ord);
        a(0, 0) = 1.0;
        a(0, 1) = 2.0;
        a(1, 0) = 3.0;
        a(1, 1) = 4.0;
        auto v = a.view();
        v += v(0, 0);
        CHECK(a(0, 0) == 2.0);
        CHECK(a(0, 1) == 3.0);
        CHECK(a(1, 0) == 4.0);
        CHECK(a(1, 1) == 5.0);
        auto column = xt::view(v, xt::all(), 1); // a strided slice
        column *= v(0, 1);
        CHECK(a(0, 1) == 9.0);
        CHECK(a(1, 1) == 15.0);
    }
}

TEST_CASE("view(): an expression that reads the array it writes is evaluated first", "[view]")
{
    in_both_orders<double>({5, 5}, [](auto v, auto& x) {
        v = xt::transpose(v);
        x = std::decay_t<decltype(x)>(xt::transpose(x));
    });
    in_both_orders<double>({4, 6}, [](auto v, auto& x) {
        v = xt::view(v, 0, xt::all()); // row 0 broadcast over every row
        x = std::decay_t<decltype(x)>(xt::broadcast(xt::view(x, 0, xt::all()), x.shape()));
    });
    in_both_orders<double>({4, 6}, [](auto v, auto& x) {
        v = v + xt::view(v, xt::range(0, 1), xt::all()) * 2.0;
        x = std::decay_t<decltype(x)>(x + xt::view(x, xt::range(0, 1), xt::all()) * 2.0);
    });
    in_both_orders<double>({4, 6}, [](auto v, auto& x) {
        v += xt::flip(v, 1);
        x += std::decay_t<decltype(x)>(xt::flip(x, 1));
    });
    in_both_orders<double>({4, 6}, [](auto v, auto& x) {
        v = v * v + v; // the same elements at the same positions: no temporary needed, same result
        x = x * x + x;
        const auto& same = v;
        v = same; // assigning a view to itself changes nothing
        x = std::decay_t<decltype(x)>(x);
    });
    in_both_orders<double>({4, 6}, [](auto v, auto& x) {
        v = xt::sum(v, {0}); // a reducer of the array itself, broadcast back
        x = std::decay_t<decltype(x)>(xt::broadcast(xt::sum(x, {0}), x.shape()));
    });
}

TEST_CASE("view(): slices, reducers and views of views", "[view]")
{
    const auto row = pattern<double>(5, 4);
    in_both_orders<double>({3, 5}, [&](auto v, auto& x) {
        xt::view(v, 1, xt::all()) = xt::adapt(row, {5});
        xt::view(x, 1, xt::all()) = xt::adapt(row, {5});
        xt::view(v, xt::all(), 2) += 10.0;
        xt::view(x, xt::all(), 2) += 10.0;
        xt::view(v, xt::range(0, 2), xt::range(1, 4)) *= -1.0;
        xt::view(x, xt::range(0, 2), xt::range(1, 4)) *= -1.0;
    });
    // A scalar into slices that are contiguous in one order and strided in the other.
    in_both_orders<double>({4, 5}, [&](auto v, auto& x) {
        xt::view(v, xt::range(1, 3), xt::all()) = 7.0;
        xt::view(x, xt::range(1, 3), xt::all()) = 7.0;
        xt::view(v, xt::all(), xt::range(3, 5)) = -2.0;
        xt::view(x, xt::all(), xt::range(3, 5)) = -2.0;
        xt::view(v, xt::range(0, 4, 3), xt::range(0, 5, 2)) = 0.5;
        xt::view(x, xt::range(0, 4, 3), xt::range(0, 5, 2)) = 0.5;
        xt::view(v, 2, xt::all()) = 9; // converted to the element type
        xt::view(x, 2, xt::all()) = 9;
        xt::noalias(xt::view(v, xt::all(), xt::range(1, 4))) = 3.5;
        xt::noalias(xt::view(x, xt::all(), xt::range(1, 4))) = 3.5;
    });
    in_both_orders<std::int32_t>({3, 4, 5}, [&](auto v, auto& x) {
        xt::view(v, xt::range(2, 0, -1), xt::all(), xt::range(4, 0, -2)) = -1; // negative strides
        xt::view(x, xt::range(2, 0, -1), xt::all(), xt::range(4, 0, -2)) = -1;
        xt::view(v, xt::all(), xt::range(1, 3), xt::all()) = 5;
        xt::view(x, xt::all(), xt::range(1, 3), xt::all()) = 5;
        xt::view(v, xt::range(2, 0, -1), xt::all(), xt::range(1, 4)) += 3;
        xt::view(x, xt::range(2, 0, -1), xt::all(), xt::range(1, 4)) += 3;
        xt::view(v, xt::all(), xt::range(0, 4, 3), 2) *= -2;
        xt::view(x, xt::all(), xt::range(0, 4, 3), 2) *= -2;
        xt::view(v, xt::all(), 1, xt::all()) -= 1.5; // converted as xtensor converts it
        xt::view(x, xt::all(), 1, xt::all()) -= 1.5;
        xt::view(v, 1, 3, xt::range(0, 0)) = 8; // no elements
        xt::view(x, 1, 3, xt::range(0, 0)) = 8;
        xt::view(v, 0, 0, 0) = 6; // one element
        xt::view(x, 0, 0, 0) = 6;
    });
    for (auto ord : {ndshm::order::c, ndshm::order::fortran}) {
        auto a = shared_ndarray<double>::create({3, 4, 5}, ord);
        const auto src = pattern<double>(60, 8);
        std::copy(src.begin(), src.end(), a.begin());
        const auto layout = ord == ndshm::order::c ? xt::layout_type::row_major : xt::layout_type::column_major;
        xt::xarray<double> x = xt::adapt<xt::layout_type::dynamic>(a.data(), a.size(), xt::no_ownership(), a.shape(),
                                                                   layout);
        CHECK(xt::sum(a.view())() == Approx(xt::sum(x)()));
        CHECK(xt::allclose(xt::sum(a.view(), {1}), xt::sum(x, {1})));
        CHECK(xt::allclose(xt::mean(a.view(), {0, 2}), xt::mean(x, {0, 2})));
        CHECK(xt::amax(a.view())() == xt::amax(x)());
        CHECK(a.view()(2, 3, 4) == x(2, 3, 4));
        CHECK(bool(xt::view(a.view(), 1, xt::all(), 3) == xt::view(x, 1, xt::all(), 3)));
    }
}

TEST_CASE("view(): assigning one shared array to another of the other order", "[view]")
{
    auto c = shared_ndarray<double>::create({3, 4});
    auto f = shared_ndarray<double>::create({3, 4}, ndshm::order::fortran);
    const auto src = pattern<double>(12, 6);
    std::copy(src.begin(), src.end(), c.begin());
    f.view() = c.view();
    for (std::size_t i = 0; i < 3; ++i) {
        for (std::size_t j = 0; j < 4; ++j) {
            CHECK(f(i, j) == c(i, j));
            CHECK(f.data()[i + 3 * j] == c.data()[i * 4 + j]); // column-major bytes
        }
    }
    auto c2 = shared_ndarray<double>::attach(c.name());
    c2.view() = f.view() * 2.0;
    CHECK(c(2, 3) == 2.0 * f(2, 3));
    // A view object stays bound to its array when assigned to.
    auto v = c.view();
    v = f.view();
    CHECK(v.data() == c.data());
    CHECK(bool(c.view() == f.view()));
}

TEST_CASE("view(): a shape that does not broadcast is refused, nothing is written", "[view]")
{
    auto a = shared_ndarray<double>::create({3, 4});
    a.view() = 1.0;
    xt::xarray<double> wrong = xt::ones<double>({5});
    CHECK_THROWS_AS(a.view() = wrong, xt::broadcast_error);
    CHECK_THROWS_AS(a.view() += wrong, xt::broadcast_error);
    CHECK(xt::sum(a.view())() == 12.0);
}

TEST_CASE("from_array: expressions, containers and generators in both standards", "[view]")
{
    const auto src = pattern<float>(24, 2);
    auto a = shared_ndarray<float>::from_array(xt::adapt(src, {2, 3, 4}));
    CHECK(a.shape() == ndshm::shape_type{2, 3, 4});
    CHECK(std::equal(a.begin(), a.end(), src.begin()));
    auto b = shared_ndarray<float>::from_array(xt::arange<float>(10) * 2.0f);
    CHECK(b(9) == 18.0f);
    const xt::xarray<float, xt::layout_type::column_major> f = xt::adapt(src, {4, 6});
    auto c = shared_ndarray<float>::from_array(f); // from_array stores C order
    CHECK_FALSE(c.fortran_order());
    CHECK(bool(c.view() == f));
    CHECK(c.data()[1] == f(0, 1));
    auto d = shared_ndarray<double>::from_array(xt::cast<double>(xt::adapt(src, {24})));
    CHECK(d(23) == static_cast<double>(src[23]));
}

TEST_CASE("view() of a const handle reads the same elements, in Fortran order too", "[view]")
{
    auto f = ndshm::shared_tensor<double, 2>::create({6, 3}, ndshm::order::fortran);
    const auto src = pattern<double>(18, 1);
    std::copy(src.begin(), src.end(), f.begin());
    const auto& cf = f;
    auto v = cf.view();
    const auto x = xt::adapt<xt::layout_type::column_major>(src, std::vector<std::size_t>{6, 3});
    CHECK(bool(xt::view(v, xt::range(2, 4), xt::all()) == xt::view(x, xt::range(2, 4), xt::all())));
}
