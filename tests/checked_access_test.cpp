// Built with NDSHM_ENABLE_ASSERT: operator() checks its indices as at() does.
#ifndef NDSHM_ENABLE_ASSERT
#error "this test is built with NDSHM_ENABLE_ASSERT (tests/CMakeLists.txt)"
#endif
#include <ndshm/shared_ndarray.hpp>
#include <ndshm/shared_tensor.hpp>

#include <catch2/catch.hpp>

#include <stdexcept>
#include <string>
#include <vector>

TEST_CASE("with NDSHM_ENABLE_ASSERT, operator() checks the index count and bounds", "[shared_ndarray]")
{
    static_assert(ndshm::detail::checked_access);
    auto c = ndshm::shared_ndarray<double>::create({4, 5});
    c(3, 4) = 2.0;
    CHECK(c(3, 4) == 2.0);
    CHECK_THROWS_AS(c(1), std::out_of_range); // would address c(0, 1) unchecked
    CHECK_THROWS_AS(c(10, 10), std::out_of_range);
    CHECK_THROWS_AS(c(4, 0), std::out_of_range);
    CHECK_THROWS_WITH(c(0, 5), Catch::Contains("axis 1 (size 5)"));
    const auto& cc = c;
    CHECK_THROWS_AS(cc(0, 0, 0), std::out_of_range);
    auto t = ndshm::shared_tensor<float, 2>::create({2, 2});
    CHECK_THROWS_AS(t(2, 0), std::out_of_range);
    const std::vector<std::size_t> good{3, 4}, bad{3, 5}, short_index{4};
    CHECK(c.element(good.begin(), good.end()) == 2.0);
    CHECK(c[good] == 2.0);
    CHECK_THROWS_WITH(c.element(bad.begin(), bad.end()),
                      Catch::Contains("element(3, 5)") && Catch::Contains("axis 1 (size 5)"));
    CHECK_THROWS_AS(c[short_index], std::out_of_range);
    CHECK_THROWS_AS(c[4], std::out_of_range);
    CHECK_THROWS_AS((t[{0, 2}]), std::out_of_range);
    ndshm::shared_ndarray<double> empty;
    CHECK_THROWS_AS(empty(0), std::out_of_range);
}
