#include <ndshm/any_ndarray.hpp>

#include <catch2/catch.hpp>
#include <xtensor/xmath.hpp>

#include <complex>
#include <cstdint>
#include <string>

TEST_CASE("attach_any reads dtype and shape, as<T> gives the typed handle", "[any_ndarray]")
{
    auto a = ndshm::shared_ndarray<std::uint16_t>::create({2, 5});
    a(1, 4) = 7;
    auto any = ndshm::attach_any(a.name());
    CHECK(any.dtype() == ndshm::dtype::uint16);
    CHECK(any.shape() == ndshm::shape_type{2, 5});
    CHECK(any.size() == 10);
    CHECK(any.nbytes() == 20);
    CHECK(any.dimension() == 2);
    CHECK(any.name() == a.name());
    CHECK(any.has_trailer());
    CHECK_FALSE(any.read_only());
    auto typed = any.as<std::uint16_t>();
    CHECK(typed(1, 4) == 7);
    typed(0, 0) = 3;
    CHECK(a(0, 0) == 3);
    CHECK(typed.data() == any.as<const std::uint16_t>().data()); // the same mapping
    CHECK_THROWS_AS(any.as<double>(), ndshm::dtype_mismatch);
    CHECK_THROWS_WITH(any.as<std::int16_t>(), Catch::Contains("uint16") && Catch::Contains("int16"));
}

TEST_CASE("visit dispatches on the stored dtype", "[any_ndarray]")
{
    auto c = ndshm::shared_ndarray<std::complex<float>>::create({3});
    c(1) = {1.0f, 2.0f};
    const auto any = ndshm::attach_any(c.name());
    const std::string seen = any.visit([](auto arr) {
        using T = typename decltype(arr)::value_type;
        return std::string(ndshm::dtype_name(ndshm::dtype_of<T>)) + ":" + std::to_string(arr.size());
    });
    CHECK(seen == "complex64:3");
}

TEST_CASE("attach_any read-only refuses writable handles", "[any_ndarray][security]")
{
    auto a = ndshm::shared_ndarray<double>::create({3});
    ndshm::options o;
    o.read_only = true;
    auto any = ndshm::attach_any(a.name(), o);
    CHECK(any.read_only());
    CHECK_THROWS_AS(any.as<double>(), ndshm::error);
    CHECK(xt::sum(any.as<const double>().view())() == 0.0);
}
