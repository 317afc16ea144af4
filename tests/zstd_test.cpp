// Compressed object files (zstd.hpp): smaller files, round trips through read_object and share_file,
// incompressible arrays stored as they are, and clear errors for a missing codec or corrupt data.
#include <ndshm/all.hpp>

#include <xtensor/xbuilder.hpp>
#include <xtensor/xview.hpp>
#include <ndshm/zstd.hpp>

#include "objects_util.hpp"
#include "test_util.hpp"

#include <catch2/catch.hpp>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

using ndshm::shared_ndarray;
using objects_util::temp_dir;

namespace {

struct sample {
    std::string name;
    xt::xarray<double> smooth;          // compresses well
    shared_ndarray<std::uint8_t> noise; // does not
    std::vector<xt::xarray<float>> small;
    template <class A>
    void serialize(A& ar)
    {
        ar(name, smooth, noise, small);
    }
};

sample make_sample()
{
    sample s;
    s.name = "compressed";
    s.smooth = xt::arange<double>(200000.0).reshape({1000, 200}) / 7.0;
    std::mt19937 rng(99);
    auto noise = shared_ndarray<std::uint8_t>::create({50000});
    for (auto& b : noise) {
        b = static_cast<std::uint8_t>(rng());
    }
    s.noise = noise;
    for (int i = 0; i < 20; ++i) {
        s.small.push_back(xt::zeros<float>({16}) + static_cast<float>(i));
    }
    return s;
}

bool same(const sample& a, const sample& b)
{
    return a.name == b.name && a.smooth == b.smooth && a.noise.view() == b.noise.view() && a.small == b.small;
}

ndshm::detail::parsed_object parse_file(const std::vector<unsigned char>& bytes)
{
    const auto info = ndshm::detail::parse_npy(bytes.data(), bytes.size(), "file");
    return ndshm::detail::parse_object_payload(bytes.data() + info.data_offset, info.nbytes, info.data_offset, "test",
                                               "file");
}

} // namespace

TEST_CASE("compressed object files are smaller and load back", "[zstd][file][object]")
{
    temp_dir dir("zstd");
    const sample s = make_sample();
    ndshm::file_options fo;
    fo.compression = ndshm::zstd();
    ndshm::save_object(dir / "plain.npy", s);
    ndshm::save_object(dir / "packed.npy", s, fo);
    const auto plain = objects_util::read_file(dir / "plain.npy");
    const auto packed = objects_util::read_file(dir / "packed.npy");
    CHECK(packed.size() * 2 < plain.size());
    // The smooth array is compressed; the noise did not shrink and is stored as it is.
    const auto obj = parse_file(packed);
    CHECK(obj.codec == ndshm::detail::codec_zstd);
    REQUIRE(obj.entries.size() == 22);
    CHECK(obj.entries[0].compressed);
    CHECK(obj.entries[0].stored_bytes < obj.entries[0].nbytes);
    CHECK(!obj.entries[1].compressed);
    CHECK(same(ndshm::read_object<sample>(dir / "packed.npy", fo), s));
    CHECK(same(ndshm::read_object<sample>(dir / "plain.npy", fo), s)); // a codec does not hurt plain files
    // Still a .npy of bytes that NumPy opens.
    CHECK(objects_util::numpy({"object", dir / "packed.npy"}).ok());
}

TEST_CASE("share_file decompresses into a segment other processes load", "[zstd][file][object][multiprocess]")
{
    temp_dir dir("zstd");
    ndshm::file_options fo;
    fo.compression = ndshm::zstd(9);
    ndshm::save_object(dir / "packed.npy", make_sample(), fo);
    const ndshm::shared_object h = ndshm::share_file(dir / "packed.npy", {}, fo);
    const std::string name = h.name();
    CHECK(test_util::run_child([&] { return same(ndshm::load<sample>(name), make_sample()) ? 0 : 1; }).ok());
    // And a shared object saves compressed.
    ndshm::save_object(dir / "again.npy", h, fo);
    CHECK(same(ndshm::read_object<sample>(dir / "again.npy", fo), make_sample()));
}

TEST_CASE("a compressed file without its codec, or with corrupt data, is format_error", "[zstd][file][bad-input]")
{
    temp_dir dir("zstd");
    ndshm::file_options fo;
    fo.compression = ndshm::zstd();
    ndshm::save_object(dir / "packed.npy", make_sample(), fo);
    CHECK_THROWS_WITH(ndshm::read_object<sample>(dir / "packed.npy"), Catch::Contains("zstd"));
    CHECK_THROWS_AS(ndshm::share_file(dir / "packed.npy"), ndshm::format_error);
    auto bytes = objects_util::read_file(dir / "packed.npy");
    const auto obj = parse_file(bytes);
    const auto& e = obj.entries[0];
    REQUIRE(e.compressed);
    for (std::size_t k = 0; k < 16; ++k) {
        bytes[e.offset + e.stored_bytes / 2 + k] ^= 0x5A;
    }
    objects_util::write_file(dir / "corrupt.npy", bytes);
    CHECK_THROWS_AS(ndshm::read_object<sample>(dir / "corrupt.npy", fo), ndshm::format_error);
    CHECK_THROWS_AS(ndshm::share_file(dir / "corrupt.npy", {}, fo), ndshm::format_error);
    // A compressed array in a segment (only files may hold them) is refused too.
    objects_util::raw_segment seg(objects_util::read_file(dir / "packed.npy"));
    CHECK_THROWS_WITH(ndshm::load<sample>(seg.name), Catch::Contains("compressed"));
}
