#include <ndshm/any_ndarray.hpp>
#include <ndshm/shared_tensor.hpp>

#include <catch2/catch.hpp>
#include <xtensor/xbuilder.hpp>
#include <xtensor/xmath.hpp>

#include <array>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

using ndshm::shared_ndarray;
using ndshm::shared_tensor;
using tensor2d = shared_tensor<double, 2>;
using tensor3f = shared_tensor<float, 3>;

TEST_CASE("shared_tensor<T, N>: a fixed-rank handle with a fixed-rank view", "[shared_tensor]")
{
    auto img = shared_tensor<float, 2>::create({48, 64});
    static_assert(std::is_same_v<shared_tensor<float, 2>::shape_type, std::array<std::size_t, 2>>);
    static_assert(std::is_same_v<decltype(img.view().shape()), const std::array<std::size_t, 2>&>);
    CHECK(img.shape() == std::array<std::size_t, 2>{48, 64});
    CHECK(img.dimension() == 2);
    img.view() = xt::ones<float>({48, 64});
    img(47, 63) = 5.0f;
    CHECK(xt::sum(img.view())() == Approx(48 * 64 + 4));
    auto same = shared_tensor<float, 2>::attach(img.name());
    CHECK(same(47, 63) == 5.0f);
    CHECK(same.at(0, 0) == 1.0f);
    CHECK_THROWS_AS(same.at(48, 0), std::out_of_range);
    // Fortran order, from_array, the read-only form.
    auto f = shared_tensor<double, 3>::create({2, 3, 4}, ndshm::order::fortran);
    f.view() = xt::arange<double>(24).reshape({2, 3, 4});
    CHECK(f(1, 2, 3) == 23.0);
    CHECK(f.data()[1] == 12.0); // column-major: (1, 0, 0) follows (0, 0, 0)
    auto g = shared_tensor<std::int32_t, 1>::from_array(xt::arange<std::int32_t>(5));
    shared_tensor<const std::int32_t, 1> r = g;
    CHECK(r(4) == 4);
    auto ro = shared_tensor<const std::int32_t, 1>::attach(g.name());
    CHECK(ro.size() == 5);
}

TEST_CASE("shared_tensor refuses a segment or an expression of another rank, naming both", "[shared_tensor]")
{
    auto a = shared_ndarray<double>::create({2, 3, 4});
    try {
        (void)shared_tensor<double, 2>::attach(a.name());
        FAIL("attach of a rank-3 segment as rank 2 succeeded");
    } catch (const ndshm::error& e) {
        const std::string m = e.what();
        CHECK_THAT(m, Catch::Contains("rank 3") && Catch::Contains("rank 2") && Catch::Contains("(2, 3, 4)") &&
                          Catch::Contains(a.name()));
        CHECK(e.code() == ndshm::errc::rank_mismatch);
    }
    CHECK_THROWS_AS(tensor2d::from_array(xt::arange<double>(6)), ndshm::error);
    CHECK_THROWS_AS(tensor2d(a), ndshm::error);
    CHECK_THROWS_AS((ndshm::attach_any(a.name()).as_tensor<double, 2>()), ndshm::error);
    CHECK_THROWS_AS(tensor3f::attach(a.name()), ndshm::dtype_mismatch);
}

TEST_CASE("shared_tensor and shared_ndarray convert into each other over one mapping", "[shared_tensor]")
{
    auto t = shared_tensor<double, 2>::create({3, 3});
    shared_ndarray<double> any_rank = t; // implicit, like xtensor to xarray
    any_rank(1, 1) = 2.0;
    CHECK(t(1, 1) == 2.0);
    auto back = shared_tensor<double, 2>(any_rank); // explicit: checks the rank
    CHECK(back.data() == t.data());
    CHECK(ndshm::attach_any(t.name()).as_tensor<double, 2>()(1, 1) == 2.0);
    shared_tensor<double, 2> from_empty{shared_ndarray<double>()};
    CHECK(from_empty.empty());
}

TEST_CASE("a moved-from or reset shared_tensor is empty", "[shared_tensor][lifetime]")
{
    auto a = shared_tensor<double, 2>::create({4, 5});
    auto b = std::move(a);
    for (auto* h : {&a, &b}) {
        if (h == &b) {
            CHECK(b.size() == 20);
            b.reset();
        }
        CHECK(h->empty());
        CHECK(h->size() == 0);
        CHECK(h->data() == nullptr);
        CHECK(h->begin() == h->end());
        CHECK(h->shape() == std::array<std::size_t, 2>{0, 0});
        CHECK(h->view().size() == 0);
        CHECK(h->name().empty());
        CHECK_THROWS_AS(h->at(0, 0), std::out_of_range);
    }
}
