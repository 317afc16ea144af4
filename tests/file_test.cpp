// Files (file.hpp): .npy save/load/map with row ranges, NumPy interop both ways, atomic writes under
// crashes and full disks, and composite objects in files.
#include <ndshm/all.hpp>

#include <xtensor/xbuilder.hpp>
#include <xtensor/xview.hpp>

#include "objects_util.hpp"
#include "test_util.hpp"

#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/mman.h>

#include <complex>
#include <cstdint>
#include <map>
#include <string>
#include <type_traits>
#include <vector>

using ndshm::row_range;
using ndshm::shared_ndarray;
using objects_util::temp_dir;

namespace {

/// An xarray of `shape` holding the pattern (in C-order flat index order).
template <class T>
xt::xarray<T> pattern(const std::vector<std::size_t>& shape)
{
    xt::xarray<T> a = xt::xarray<T>::from_shape(shape);
    for (std::size_t k = 0; k < a.size(); ++k) {
        a.data()[k] = test_util::pattern_value<T>(k);
    }
    return a;
}

std::string shape_arg(const std::vector<std::size_t>& shape)
{
    std::string s;
    for (std::size_t i = 0; i < shape.size(); ++i) {
        s += (i != 0 ? "," : "") + std::to_string(shape[i]);
    }
    return s;
}

/// Saves the pattern with ndshm in C and Fortran order; NumPy checks both files.
template <class T>
void numpy_reads(const temp_dir& dir, const std::vector<std::size_t>& shape)
{
    const xt::xarray<T> want = pattern<T>(shape);
    const std::string descr = ndshm::dtype_descr(ndshm::dtype_of<T>);
    const std::string c_path = dir / ("c_" + std::string(ndshm::dtype_name(ndshm::dtype_of<T>)) + ".npy");
    ndshm::save_npy(c_path, want);
    CHECK(objects_util::numpy({"check", c_path, descr, shape_arg(shape), "C"}).ok());
    // A Fortran-order shared array is saved in Fortran order.
    auto f = shared_ndarray<T>::create(shape, ndshm::order::fortran);
    if (want.size() != 0) { // xtensor 0.24 computes an end pointer from null for an empty container
        f.view() = want;
    }
    const std::string f_path = dir / ("f_" + std::string(ndshm::dtype_name(ndshm::dtype_of<T>)) + ".npy");
    ndshm::save_npy(f_path, f);
    CHECK(objects_util::numpy({"check", f_path, descr, shape_arg(shape), shape.size() > 1 ? "F" : "C"}).ok());
    CHECK(ndshm::read_npy_header(f_path).fortran_order == (shape.size() > 1));
}

/// NumPy saves the pattern in C and Fortran order; read_npy and map_npy read both.
template <class T>
void numpy_writes(const temp_dir& dir, const std::vector<std::size_t>& shape)
{
    const xt::xarray<T> want = pattern<T>(shape);
    const std::string descr = ndshm::dtype_descr(ndshm::dtype_of<T>);
    for (const char* order : {"C", "F"}) {
        const std::string path = dir / (std::string("np_") + order + ndshm::dtype_name(ndshm::dtype_of<T>) + ".npy");
        REQUIRE(objects_util::numpy({"save", path, descr, shape_arg(shape), order}).ok());
        const auto h = ndshm::read_npy_header(path);
        CHECK(h.dtype == ndshm::dtype_of<T>);
        CHECK(h.shape == ndshm::shape_type(shape.begin(), shape.end()));
        CHECK(h.data_offset % 64 == 0);
        const auto loaded = ndshm::read_npy<T>(path);
        CHECK((loaded.view() == want));
        CHECK(!loaded.name().empty());
        const auto mapped = ndshm::map_npy<T>(path);
        CHECK((mapped.view() == want));
    }
}

/// Counts the bytes read through the system-call table while alive.
struct read_counter {
    objects_util::sys_patch patch;
    static inline std::size_t bytes = 0;
    static inline std::size_t calls = 0;
    read_counter()
    {
        bytes = 0;
        calls = 0;
        ndshm::detail::sys().pread = [](int fd, void* b, std::size_t n, off_t o) -> ssize_t {
            const ssize_t r = ::pread(fd, b, n, o);
            if (r > 0) {
                bytes += static_cast<std::size_t>(r);
            }
            ++calls;
            return r;
        };
    }
};

} // namespace

TEST_CASE("NumPy reads the .npy files ndshm saves", "[file][numpy]")
{
    temp_dir dir("npy");
    numpy_reads<double>(dir, {5, 4});
    numpy_reads<float>(dir, {3, 2, 4});
    numpy_reads<std::int32_t>(dir, {7});
    numpy_reads<std::uint8_t>(dir, {4, 4});
    numpy_reads<bool>(dir, {3, 5});
    numpy_reads<std::complex<double>>(dir, {2, 3});
    numpy_reads<std::int64_t>(dir, {});
    numpy_reads<std::uint16_t>(dir, {0, 3});
    numpy_reads<std::uint32_t>(dir, {2, 2});
}

TEST_CASE("ndshm loads and maps the .npy files NumPy saves", "[file][numpy]")
{
    temp_dir dir("npy");
    numpy_writes<double>(dir, {6, 5});
    numpy_writes<float>(dir, {2, 3, 4});
    numpy_writes<std::int16_t>(dir, {9});
    numpy_writes<std::uint64_t>(dir, {3, 3});
    numpy_writes<bool>(dir, {4, 2});
    numpy_writes<std::complex<float>>(dir, {3, 2});
    numpy_writes<std::int8_t>(dir, {});
}

TEST_CASE("save_npy of expressions, views and empty arrays round-trips", "[file]")
{
    temp_dir dir("npy");
    const xt::xarray<double> a = xt::arange<double>(24.0).reshape({4, 6});
    ndshm::save_npy(dir / "expr.npy", 2.0 * a + 1.0); // evaluated first
    CHECK((ndshm::read_npy<double>(dir / "expr.npy").view() == 2.0 * a + 1.0));
    ndshm::save_npy(dir / "view.npy", xt::view(a, xt::range(1, 3), xt::all()));
    CHECK((ndshm::read_npy<double>(dir / "view.npy").view() == xt::view(a, xt::range(1, 3), xt::all())));
    const xt::xtensor<float, 2, xt::layout_type::column_major> cm = xt::ones<float>({3, 2});
    ndshm::save_npy(dir / "cm.npy", cm);
    CHECK(ndshm::read_npy_header(dir / "cm.npy").fortran_order);
    ndshm::save_npy(dir / "empty.npy", shared_ndarray<double>());
    CHECK(ndshm::read_npy<double>(dir / "empty.npy").size() == 0);
    // Saving over an existing file replaces it.
    ndshm::save_npy(dir / "expr.npy", a);
    CHECK((ndshm::map_npy<double>(dir / "expr.npy").view() == a));
}

TEST_CASE("row ranges read and map only those rows", "[file]")
{
    temp_dir dir("rows");
    const std::string path = dir / "big.npy";
    const xt::xarray<double> a = pattern<double>({1000, 16});
    ndshm::save_npy(path, a);
    const std::size_t offset = ndshm::read_npy_header(path).data_offset;
    const std::size_t row = 16 * sizeof(double);
    {
        read_counter count;
        const auto part = ndshm::read_npy<double>(path, row_range{100, 200});
        CHECK(part.shape() == ndshm::shape_type{100, 16});
        CHECK((part.view() == xt::view(a, xt::range(100, 200), xt::all())));
        // The header, then exactly the 100 rows.
        CHECK(read_counter::bytes == offset + 100 * row);
    }
    {
        objects_util::sys_patch patch;
        static std::size_t mapped_len = 0;
        static off_t mapped_off = -1;
        ndshm::detail::sys().mmap = [](void* at, std::size_t n, int prot, int flags, int fd, off_t off) -> void* {
            mapped_len = n;
            mapped_off = off;
            return ::mmap(at, n, prot, flags, fd, off);
        };
        const auto view = ndshm::map_npy<double>(path, row_range{500, 510});
        CHECK(view.shape() == ndshm::shape_type{10, 16});
        CHECK((view.view() == xt::view(a, xt::range(500, 510), xt::all())));
        CHECK(mapped_off == static_cast<off_t>((offset + 500 * row) / 4096 * 4096));
        CHECK(mapped_len <= 10 * row + 4096);
        const auto tail = ndshm::map_npy<double>(path, row_range{990});
        CHECK(tail.shape()[0] == 10);
        CHECK(tail(9, 15) == a(999, 15));
        const auto none = ndshm::map_npy<double>(path, row_range{1000, 1000});
        CHECK(none.size() == 0);
    }
}

TEST_CASE("row ranges of Fortran-order files load, and map only whole", "[file]")
{
    temp_dir dir("rows");
    const std::string path = dir / "f.npy";
    auto f = shared_ndarray<std::int32_t>::create({50, 3}, ndshm::order::fortran);
    f.view() = pattern<std::int32_t>({50, 3});
    ndshm::save_npy(path, f);
    const std::size_t offset = ndshm::read_npy_header(path).data_offset;
    read_counter count;
    const auto part = ndshm::read_npy<std::int32_t>(path, row_range{10, 20});
    CHECK(part.fortran_order());
    CHECK((part.view() == xt::view(f.view(), xt::range(10, 20), xt::all())));
    CHECK(read_counter::bytes == offset + 3 * 10 * sizeof(std::int32_t));
    CHECK_THROWS_WITH(ndshm::map_npy<std::int32_t>(path, row_range{10, 20}), Catch::Contains("Fortran-order"));
    CHECK((ndshm::map_npy<std::int32_t>(path).view() == f.view()));
}

TEST_CASE("bad files and bad row ranges get clear errors", "[file][bad-input]")
{
    temp_dir dir("bad");
    CHECK_THROWS_AS(ndshm::read_npy<double>(dir / "missing.npy"), ndshm::not_found);
    CHECK_THROWS_AS(ndshm::map_npy<double>(dir / "missing.npy"), ndshm::not_found);
    CHECK_THROWS_AS(ndshm::read_npy_header(dir / "missing.npy"), ndshm::not_found);
    CHECK_THROWS_AS(ndshm::save_npy(dir / "no_such_dir/x.npy", xt::xarray<double>{1}), ndshm::not_found);
    CHECK_THROWS_AS(ndshm::read_npy<double>(dir.path()), ndshm::error);

    objects_util::write_file(dir / "text.npy", {'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd', '!'});
    CHECK_THROWS_AS(ndshm::read_npy<double>(dir / "text.npy"), ndshm::format_error);
    objects_util::write_file(dir / "empty.npy", {});
    CHECK_THROWS_AS(ndshm::map_npy<double>(dir / "empty.npy"), ndshm::format_error);

    ndshm::save_npy(dir / "a.npy", xt::xarray<double>{{1, 2}, {3, 4}, {5, 6}});
    auto bytes = objects_util::read_file(dir / "a.npy");
    bytes.resize(bytes.size() - 8);
    objects_util::write_file(dir / "short.npy", bytes);
    CHECK_THROWS_WITH(ndshm::read_npy<double>(dir / "short.npy"), Catch::Contains("truncated"));
    CHECK_THROWS_AS(ndshm::map_npy<double>(dir / "short.npy"), ndshm::format_error);

    CHECK_THROWS_AS(ndshm::read_npy<float>(dir / "a.npy"), ndshm::dtype_mismatch);
    CHECK_THROWS_WITH(ndshm::map_npy<float>(dir / "a.npy"), Catch::Contains("float64") && Catch::Contains("float32"));
    CHECK_THROWS_WITH(ndshm::read_npy<double>(dir / "a.npy", row_range{2, 1}), Catch::Contains("outside"));
    CHECK_THROWS_WITH(ndshm::read_npy<double>(dir / "a.npy", row_range{0, 4}), Catch::Contains("3 rows"));
    CHECK_THROWS_AS(ndshm::map_npy<double>(dir / "a.npy", row_range{4}), ndshm::error);

    ndshm::save_npy(dir / "scalar.npy", xt::xarray<double>(7.0));
    CHECK(ndshm::read_npy<double>(dir / "scalar.npy")() == 7.0);
    CHECK_THROWS_WITH(ndshm::read_npy<double>(dir / "scalar.npy", row_range{0, 1}), Catch::Contains("0-dimensional"));
}

TEST_CASE("a writer that dies mid-write leaves the old file intact", "[file][crash]")
{
    temp_dir dir("atomic");
    const std::string path = dir / "data.npy";
    const xt::xarray<double> old = xt::arange<double>(10.0);
    ndshm::save_npy(path, old);
    const auto status = test_util::run_child([&] {
        // The header is written whole; the data write stops halfway and the process is killed.
        ndshm::detail::sys().pwrite = [](int fd, const void* b, std::size_t n, off_t o) -> ssize_t {
            if (o == 0) {
                return ::pwrite(fd, b, n, o);
            }
            (void)::pwrite(fd, b, n / 2, o);
            ::raise(SIGKILL);
            return -1;
        };
        ndshm::save_npy(path, xt::xarray<double>(xt::ones<double>({1000, 100})));
        return 0;
    });
    CHECK(status.signal == SIGKILL);
    CHECK((ndshm::read_npy<double>(path).view() == old));
    // What is left is a hidden temporary file beside it, never the final name.
    const auto names = dir.entries();
    REQUIRE(names.size() == 2);
    CHECK(names[0].rfind(".data.npy.", 0) == 0);
    CHECK(names[1] == "data.npy");
}

TEST_CASE("a full disk is out_of_space and leaves the old file and no temporary", "[file][fault]")
{
    temp_dir dir("atomic");
    const std::string path = dir / "data.npy";
    ndshm::save_npy(path, xt::xarray<double>{1, 2, 3});
    {
        objects_util::sys_patch patch;
        ndshm::detail::sys().pwrite = [](int, const void*, std::size_t, off_t) -> ssize_t {
            errno = ENOSPC;
            return -1;
        };
        CHECK_THROWS_AS(ndshm::save_npy(path, xt::xarray<double>{4, 5, 6, 7}), ndshm::out_of_space);
        CHECK_THROWS_AS(ndshm::save_object(dir / "obj.npy", std::vector<int>{1}), ndshm::out_of_space);
    }
    {
        objects_util::sys_patch patch;
        ndshm::detail::sys().fsync = [](int) -> int {
            errno = EIO;
            return -1;
        };
        CHECK_THROWS_AS(ndshm::save_npy(path, xt::xarray<double>{4, 5, 6, 7}), ndshm::error);
    }
    CHECK(dir.entries() == std::vector<std::string>{"data.npy"});
    CHECK((ndshm::read_npy<double>(path).view() == xt::xarray<double>{1, 2, 3}));
}

namespace {

struct record {
    std::string name;
    std::map<std::string, xt::xarray<double>> columns;
    shared_ndarray<float> image;
    std::vector<int> ids;
    template <class A>
    void serialize(A& ar)
    {
        ar(name, columns, image, ids);
    }
};

record make_record()
{
    record r;
    r.name = "run 42";
    r.columns["x"] = xt::linspace<double>(0.0, 1.0, 11);
    r.columns["y"] = xt::arange<double>(12.0).reshape({3, 4});
    r.image = shared_ndarray<float>::from_array(xt::arange<float>(64.0f).reshape({8, 8}));
    r.ids = {4, 8, 15, 16, 23, 42};
    return r;
}

bool same_record(const record& a, const record& b)
{
    return a.name == b.name && a.columns == b.columns && a.image.view() == b.image.view() && a.ids == b.ids;
}

} // namespace

TEST_CASE("objects save to one file and load back by mapping it", "[file][object]")
{
    temp_dir dir("objfile");
    const std::string path = dir / "record.obj.npy";
    const record r = make_record();
    ndshm::save_object(path, r);
    CHECK(dir.entries() == std::vector<std::string>{"record.obj.npy"});
    {
        record g = ndshm::read_object<record>(path);
        CHECK(same_record(g, r));
        // The shared_ndarray member is a view of the mapped file, privately: writes stay here.
        CHECK(objects_util::mappings_of(path) == 1);
        CHECK(g.image.name() == "record.obj.npy");
        g.image(0, 0) = -5.0f;
        CHECK(ndshm::read_object<record>(path).image(0, 0) == 0.0f);
    }
    CHECK(objects_util::mappings_of(path) == 0);
    // NumPy sees a .npy of bytes whose payload is the object.
    CHECK(objects_util::numpy({"object", path}).ok());
}

TEST_CASE("an object file holds exactly the layout of the segment", "[file][object]")
{
    temp_dir dir("objfile");
    const std::string path = dir / "record.obj.npy";
    ndshm::save_object(path, make_record());
    // The file's bytes, put into a segment as they are, load as the object.
    objects_util::raw_segment seg(objects_util::read_file(path));
    CHECK(same_record(ndshm::load<record>(seg.name), make_record()));
    // And a segment saved to a file loads from the file.
    const auto h = ndshm::share(make_record());
    ndshm::save_object(dir / "from_segment.npy", h);
    CHECK(same_record(ndshm::read_object<record>(dir / "from_segment.npy"), make_record()));
    const auto seg_bytes = objects_util::read_file("/dev/shm/" + h.name());
    const auto file_bytes = objects_util::read_file(dir / "from_segment.npy");
    REQUIRE(seg_bytes.size() == file_bytes.size());
    // Identical up to the trailer's creator fields.
    const std::size_t trailer = seg_bytes.size() - 256;
    CHECK(std::equal(seg_bytes.begin() + 1, seg_bytes.begin() + static_cast<std::ptrdiff_t>(trailer),
                     file_bytes.begin() + 1));
}

TEST_CASE("share_file loads an object file into shared memory for other processes", "[file][object][multiprocess]")
{
    temp_dir dir("objfile");
    const std::string path = dir / "record.obj.npy";
    ndshm::save_object(path, make_record());
    const ndshm::shared_object h = ndshm::share_file(path);
    CHECK(h.array_count() == 3);
    const std::string name = h.name();
    CHECK(test_util::run_child([&] { return same_record(ndshm::load<record>(name), make_record()) ? 0 : 1; }).ok());
    CHECK_THROWS_AS(ndshm::share_file(dir / "none.npy"), ndshm::not_found);
}

TEST_CASE("an object file that is not one, or is damaged, is format_error", "[file][object][bad-input]")
{
    temp_dir dir("objfile");
    CHECK_THROWS_AS(ndshm::read_object<record>(dir / "missing.npy"), ndshm::not_found);
    ndshm::save_npy(dir / "array.npy", xt::xarray<double>{1, 2});
    CHECK_THROWS_WITH(ndshm::read_object<record>(dir / "array.npy"), Catch::Contains("not a composite object"));
    ndshm::save_object(dir / "r.npy", make_record());
    auto bytes = objects_util::read_file(dir / "r.npy");
    for (const std::size_t size : {std::size_t(50), std::size_t(4200), bytes.size() / 2, bytes.size() - 10}) {
        objects_util::write_file(
            dir / "cut.npy",
            std::vector<unsigned char>(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(size)));
        CHECK_THROWS_AS(ndshm::read_object<record>(dir / "cut.npy"), ndshm::format_error);
        CHECK_THROWS_AS(ndshm::share_file(dir / "cut.npy"), ndshm::format_error);
    }
    ndshm::detail::put_u64(bytes.data() + 4096 + 128 + 24, std::uint64_t(1) << 40);
    objects_util::write_file(dir / "toc.npy", bytes);
    CHECK_THROWS_WITH(ndshm::read_object<record>(dir / "toc.npy"), Catch::Contains("outside"));
}
