#include <ndshm/dtype.hpp>

#include <catch2/catch.hpp>

#include <complex>
#include <cstdint>
#include <string>

TEST_CASE("C++ types map to NumPy dtypes", "[dtype]")
{
    STATIC_REQUIRE(ndshm::dtype_of<bool> == ndshm::dtype::bool_);
    STATIC_REQUIRE(ndshm::dtype_of<std::int8_t> == ndshm::dtype::int8);
    STATIC_REQUIRE(ndshm::dtype_of<std::int16_t> == ndshm::dtype::int16);
    STATIC_REQUIRE(ndshm::dtype_of<std::int32_t> == ndshm::dtype::int32);
    STATIC_REQUIRE(ndshm::dtype_of<std::int64_t> == ndshm::dtype::int64);
    STATIC_REQUIRE(ndshm::dtype_of<long long> == ndshm::dtype::int64);
    STATIC_REQUIRE(ndshm::dtype_of<std::uint8_t> == ndshm::dtype::uint8);
    STATIC_REQUIRE(ndshm::dtype_of<std::uint16_t> == ndshm::dtype::uint16);
    STATIC_REQUIRE(ndshm::dtype_of<std::uint32_t> == ndshm::dtype::uint32);
    STATIC_REQUIRE(ndshm::dtype_of<std::uint64_t> == ndshm::dtype::uint64);
    STATIC_REQUIRE(ndshm::dtype_of<float> == ndshm::dtype::float32);
    STATIC_REQUIRE(ndshm::dtype_of<const double> == ndshm::dtype::float64);
    STATIC_REQUIRE(ndshm::dtype_of<std::complex<float>> == ndshm::dtype::complex64);
    STATIC_REQUIRE(ndshm::dtype_of<std::complex<double>> == ndshm::dtype::complex128);
    STATIC_REQUIRE(!ndshm::is_element_type_v<char>);
    STATIC_REQUIRE(!ndshm::is_element_type_v<long double>);
    STATIC_REQUIRE(!ndshm::is_element_type_v<std::string>);
}

TEST_CASE("descr strings, names and sizes", "[dtype]")
{
    CHECK(std::string(ndshm::dtype_descr(ndshm::dtype::float64)) == "<f8");
    CHECK(std::string(ndshm::dtype_descr(ndshm::dtype::uint8)) == "|u1");
    CHECK(std::string(ndshm::dtype_descr(ndshm::dtype::bool_)) == "|b1");
    CHECK(std::string(ndshm::dtype_descr(ndshm::dtype::complex128)) == "<c16");
    CHECK(std::string(ndshm::dtype_name(ndshm::dtype::complex64)) == "complex64");
    CHECK(ndshm::itemsize(ndshm::dtype::complex128) == 16);
    CHECK(ndshm::itemsize(ndshm::dtype::int16) == 2);
    CHECK(ndshm::itemsize(ndshm::dtype::bool_) == 1);
}
