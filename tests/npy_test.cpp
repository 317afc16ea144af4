// The .npy header writer and the parser of untrusted headers (include/ndshm/detail/npy.hpp).
#include <ndshm/detail/npy.hpp>

#include <catch2/catch.hpp>

#include <cstring>
#include <string>
#include <vector>

namespace {

using ndshm::detail::parse_npy;

/// A v1.0 .npy prefix + `dict` padded to 64 bytes, followed by `data_bytes` zero bytes.
std::vector<unsigned char> npy_bytes(const std::string& dict, std::size_t data_bytes, unsigned char major = 1)
{
    const std::size_t prefix = major == 1 ? 10 : 12;
    std::size_t total = prefix + dict.size() + 1;
    total = (total + 63) / 64 * 64;
    std::vector<unsigned char> b(total + data_bytes, 0);
    std::memcpy(b.data(), "\x93NUMPY", 6);
    b[6] = major;
    const std::size_t hlen = total - prefix;
    b[8] = static_cast<unsigned char>(hlen & 0xFF);
    b[9] = static_cast<unsigned char>(hlen >> 8);
    std::memcpy(b.data() + prefix, dict.data(), dict.size());
    std::memset(b.data() + prefix + dict.size(), ' ', total - prefix - dict.size() - 1);
    b[total - 1] = '\n';
    return b;
}

std::string parse_error(const std::vector<unsigned char>& b)
{
    try {
        (void)parse_npy(b.data(), b.size(), "test");
    } catch (const ndshm::format_error& e) {
        return e.what();
    }
    return "";
}

} // namespace

TEST_CASE("written headers are NumPy's format with data at the requested offset", "[npy]")
{
    std::vector<unsigned char> b(4096 + 24, 0);
    REQUIRE(ndshm::detail::write_npy_header(b.data(), 4096, ndshm::dtype::float64, {3}, false));
    CHECK(b[0] == 0); // the magic's first byte is stored at publication
    b[0] = 0x93;
    CHECK(std::memcmp(b.data(), "\x93NUMPY\x01\x00", 8) == 0);
    CHECK((b[8] | (b[9] << 8)) == 4096 - 10);
    const std::string text(reinterpret_cast<const char*>(b.data()) + 10, 4086);
    CHECK(text.rfind("{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", 0) == 0);
    CHECK(text.back() == '\n');
    const auto info = parse_npy(b.data(), b.size(), "t");
    CHECK(info.type == ndshm::dtype::float64);
    CHECK(info.shape == std::vector<std::size_t>{3});
    CHECK(info.data_offset == 4096);
    CHECK(info.nbytes == 24);
}

TEST_CASE("headers round-trip for every dtype, order and rank", "[npy]")
{
    for (auto t : {ndshm::dtype::bool_, ndshm::dtype::int8, ndshm::dtype::uint16, ndshm::dtype::int32,
                   ndshm::dtype::uint64, ndshm::dtype::float32, ndshm::dtype::complex64, ndshm::dtype::complex128}) {
        for (const auto& shape : std::vector<std::vector<std::size_t>>{{}, {0}, {5}, {2, 3}, {2, 0, 4}}) {
            for (bool fortran : {false, true}) {
                std::size_t n = 1;
                for (auto d : shape) {
                    n *= d;
                }
                std::vector<unsigned char> b(4096 + n * ndshm::itemsize(t), 0);
                REQUIRE(ndshm::detail::write_npy_header(b.data(), 4096, t, shape, fortran));
                b[0] = 0x93;
                const auto info = parse_npy(b.data(), b.size(), "t");
                CHECK(info.type == t);
                CHECK(info.shape == shape);
                CHECK(info.fortran_order == fortran);
                CHECK(info.size == n);
            }
        }
    }
}

TEST_CASE("headers as NumPy writes them parse: key order, spacing, version 2.0", "[npy]")
{
    const auto i8 = npy_bytes("{'descr': '<i8', 'fortran_order': True, 'shape': (2, 3), }", 48);
    auto info = parse_npy(i8.data(), i8.size(), "t");
    CHECK(info.type == ndshm::dtype::int64);
    CHECK(info.fortran_order);
    CHECK(info.shape == std::vector<std::size_t>{2, 3});
    const auto b = npy_bytes("{\"shape\":(4,),\"fortran_order\":False,\"descr\":\"|u1\"}", 4, 2);
    info = parse_npy(b.data(), b.size(), "t");
    CHECK(info.type == ndshm::dtype::uint8);
    CHECK(info.shape == std::vector<std::size_t>{4});
    CHECK(info.data_offset == 64);
}

TEST_CASE("every dtype's descr parses to it, and near misses are refused", "[npy][bad-input]")
{
    const std::string tail = "', 'fortran_order': False, 'shape': (2,), }";
    for (auto t :
         {ndshm::dtype::bool_, ndshm::dtype::int8, ndshm::dtype::int16, ndshm::dtype::int32, ndshm::dtype::int64,
          ndshm::dtype::uint8, ndshm::dtype::uint16, ndshm::dtype::uint32, ndshm::dtype::uint64, ndshm::dtype::float32,
          ndshm::dtype::float64, ndshm::dtype::complex64, ndshm::dtype::complex128}) {
        const std::string d = ndshm::dtype_descr(t);
        const auto b = npy_bytes("{'descr': '" + d + tail, 32);
        CHECK(parse_npy(b.data(), b.size(), "t").type == t);
        const auto native = npy_bytes("{'descr': '=" + d.substr(1) + tail, 32); // '=': native order
        CHECK(parse_npy(native.data(), native.size(), "t").type == t);
    }
    for (const char* d : {"<i3", "<i08", "<i80", "<i16", "<u16", "<f16", "<f2", "<c4", "<c32", "<c016", "<b2", "|i2",
                          "|f4", "<x8", "<i", "<f8 ", "< f8", "<8f", "<i1i"}) {
        INFO(d);
        CHECK_THAT(parse_error(npy_bytes(std::string("{'descr': '") + d + tail, 32)),
                   Catch::Contains("unsupported dtype"));
    }
}

TEST_CASE("corrupt, hostile or unsupported headers are format_error, never a crash", "[npy][bad-input]")
{
    const std::string ok_tail = "'fortran_order': False, 'shape': (2,), }";
    CHECK_THAT(parse_error(npy_bytes("{'descr': '>f8', " + ok_tail, 16)), Catch::Contains("big-endian"));
    CHECK_THAT(parse_error(npy_bytes("{'descr': '<f2', " + ok_tail, 16)), Catch::Contains("unsupported dtype"));
    CHECK_THAT(parse_error(npy_bytes("{'descr': '<U4', " + ok_tail, 16)), Catch::Contains("unsupported dtype"));
    CHECK_THAT(parse_error(npy_bytes("{'descr': '|f8', " + ok_tail, 16)), Catch::Contains("unsupported dtype"));
    CHECK_THAT(parse_error(npy_bytes("{'descr': [('a', '<f8')], " + ok_tail, 16)), Catch::Contains("structured"));
    CHECK_THAT(parse_error(npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (-2,), }", 16)),
               Catch::Contains("negative"));
    CHECK_THAT(
        parse_error(npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999999999999999,), }", 16)),
        Catch::Contains("too large"));
    CHECK_THAT(
        parse_error(npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", 16)),
        Catch::Contains("overflows"));
    CHECK_THAT(
        parse_error(npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (3000000000000000000,), }", 16)),
        Catch::Contains("overflows"));
    CHECK_THAT(parse_error(npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (1000,), }", 16)),
               Catch::Contains("truncated"));
    CHECK_THAT(parse_error(npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), 'x': 1}", 16)),
               Catch::Contains("unexpected key"));
    CHECK_THAT(parse_error(npy_bytes("{'descr': '<f8', 'fortran_order': False}", 16)), Catch::Contains("lacks"));
    CHECK_THAT(parse_error(npy_bytes("{'descr': '<f8', 'descr': '<f8', " + ok_tail, 16)), Catch::Contains("twice"));
    CHECK_THAT(parse_error(npy_bytes("{'descr': '<f8', 'fortran_order': maybe, 'shape': (2,), }", 16)),
               Catch::Contains("True or False"));
    CHECK_THAT(parse_error(npy_bytes("{'descr': '<f8, 'fortran_order': False, 'shape': (2,), }", 16)),
               Catch::Contains("unsupported dtype '<f8, '"));
    CHECK_THAT(parse_error(npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (2,)", 16)),
               Catch::Contains("corrupt header"));
    CHECK_THAT(parse_error(npy_bytes("{'descr': '<f8', " + ok_tail + " trailing", 16)),
               Catch::Contains("after the header"));
    std::string many = "{'descr': '<f8', 'fortran_order': False, 'shape': (";
    for (int i = 0; i < 65; ++i) {
        many += "1,";
    }
    CHECK_THAT(parse_error(npy_bytes(many + "), }", 16)), Catch::Contains("64 dimensions"));

    auto b = npy_bytes("{'descr': '<f8', " + ok_tail, 16);
    b[6] = 9;
    CHECK_THAT(parse_error(b), Catch::Contains("version"));
    b = npy_bytes("{'descr': '<f8', " + ok_tail, 16);
    b[8] = 0xFF;
    b[9] = 0xFF;
    CHECK_THAT(parse_error(b), Catch::Contains("truncated"));
    CHECK_THAT(parse_error(std::vector<unsigned char>(5, 0x93)), Catch::Contains("magic"));
    CHECK_THAT(parse_error(std::vector<unsigned char>{'P', 'K', 3, 4, 0, 0, 0, 0, 0, 0, 0, 0}),
               Catch::Contains("magic"));
}

TEST_CASE("every prefix of a valid header is rejected cleanly", "[npy][bad-input]")
{
    const auto full = npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }", 32);
    for (std::size_t n = 0; n < full.size(); ++n) {
        const std::vector<unsigned char> cut(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));
        CHECK_THROWS_AS(parse_npy(cut.data(), cut.size(), "t"), ndshm::format_error);
    }
    CHECK_NOTHROW(parse_npy(full.data(), full.size(), "t"));
}
