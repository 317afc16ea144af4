// Composite objects (object.hpp): share and load of every kind of member, zero-copy views, one
// segment for thousands of arrays, lifetime, other processes, and every kind of bad input.
#include <ndshm/all.hpp>

#include <xtensor/xbuilder.hpp>
#include <xtensor/xview.hpp>

#include <cereal/archives/binary.hpp>
#include <cereal/types/polymorphic.hpp>

#include "objects_util.hpp"
#include "test_util.hpp"

#include <catch2/catch.hpp>

#include <array>
#include <complex>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <unordered_map>
#include <variant>
#include <vector>

using ndshm::shared_ndarray;
using objects_util::raw_segment;

namespace {

enum class color : std::int16_t { red = 1, green = 2 };

struct inner {
    std::string tag;
    xt::xtensor<int, 2> grid;
    std::optional<double> maybe;
    template <class A>
    void serialize(A& ar)
    {
        ar(tag, grid, maybe);
    }
};

struct rich {
    std::string label;
    std::map<std::string, xt::xarray<double>> fields;
    shared_ndarray<float> pixels;
    shared_ndarray<const std::int32_t> ro;
    shared_ndarray<double> none;
    shared_ndarray<double> fortran;
    std::vector<inner> parts;
    std::variant<int, std::string> alt;
    std::unique_ptr<std::vector<std::uint8_t>> owned;
    std::tuple<int, double, std::string> tup;
    std::set<int> ints;
    std::unordered_map<std::string, xt::xtensor<std::complex<double>, 1>> spectra;
    xt::xarray<bool, xt::layout_type::column_major> mask;
    xt::xarray<double> zero_d;
    xt::xarray<std::int64_t> empty;
    std::array<bool, 3> flags{};
    color c = color::red;
    std::vector<double> plain;

    template <class A>
    void serialize(A& ar)
    {
        ar(label, fields, pixels, ro, none, fortran, parts, alt, owned, tup, ints, spectra, mask, zero_d, empty, flags,
           c, plain);
    }
};

rich make_rich()
{
    rich r;
    r.label = "frame 7";
    r.fields["temperature"] = xt::xarray<double>{{1.5, 2.5, 3.5}, {4.5, 5.5, 6.5}};
    r.fields["pressure"] = xt::arange<double>(100.0).reshape({4, 25});
    r.pixels = shared_ndarray<float>::from_array(xt::arange<float>(48.0f).reshape({6, 8}));
    r.ro = shared_ndarray<std::int32_t>::from_array(xt::xarray<std::int32_t>{7, -8, 9});
    auto f = shared_ndarray<double>::create({3, 4}, ndshm::order::fortran);
    f.view() = xt::arange<double>(12.0).reshape({3, 4});
    r.fortran = f;
    r.parts.push_back(inner{"a", xt::xtensor<int, 2>{{1, 2}, {3, 4}}, 2.5});
    r.parts.push_back(inner{"b", xt::xtensor<int, 2>::from_shape({0, 3}), std::nullopt});
    r.alt = std::string("variant text");
    r.owned = std::make_unique<std::vector<std::uint8_t>>(std::vector<std::uint8_t>{1, 2, 250});
    r.tup = std::make_tuple(-4, 0.25, std::string("tuple"));
    r.ints = {3, 1, 4, 1, 5};
    r.spectra["x"] = xt::xtensor<std::complex<double>, 1>{{1.0, -1.0}, {0.5, 2.0}};
    r.mask = xt::xarray<bool, xt::layout_type::column_major>{{true, false, true}, {false, false, true}};
    r.zero_d = xt::xarray<double>(42.0);
    r.empty = xt::xarray<std::int64_t>::from_shape({0, 5});
    r.flags = {true, false, true};
    r.c = color::green;
    r.plain = {0.5, 1.5};
    return r;
}

/// Checks that `g` holds what make_rich() makes (arrays compared by value).
void check_rich(const rich& g)
{
    const rich want = make_rich();
    CHECK((g.label == want.label));
    REQUIRE((g.fields.size() == 2));
    CHECK((g.fields.at("temperature") == want.fields.at("temperature")));
    CHECK((g.fields.at("pressure") == want.fields.at("pressure")));
    REQUIRE(g.pixels.shape() == ndshm::shape_type{6, 8});
    CHECK((g.pixels.view() == want.pixels.view()));
    CHECK((g.ro.view() == want.ro.view()));
    CHECK(g.none.empty());
    CHECK(g.fortran.fortran_order());
    CHECK((g.fortran.view() == want.fortran.view()));
    CHECK(g.fortran(1, 2) == 6.0);
    REQUIRE(g.parts.size() == 2);
    CHECK(g.parts[0].tag == "a");
    CHECK((g.parts[0].grid == want.parts[0].grid));
    CHECK(g.parts[0].maybe == 2.5);
    CHECK((g.parts[1].grid.shape()[0] == 0));
    CHECK((g.parts[1].grid.shape()[1] == 3));
    CHECK(!g.parts[1].maybe.has_value());
    CHECK(std::get<std::string>(g.alt) == "variant text");
    REQUIRE(g.owned != nullptr);
    CHECK(*g.owned == *want.owned);
    CHECK((g.tup == want.tup));
    CHECK((g.ints == want.ints));
    CHECK((g.spectra.at("x") == want.spectra.at("x")));
    CHECK((g.mask == want.mask));
    CHECK(g.mask(0, 2));
    CHECK(g.zero_d.dimension() == 0);
    CHECK(g.zero_d() == 42.0);
    CHECK((g.empty.shape() == want.empty.shape()));
    CHECK((g.flags == want.flags));
    CHECK(g.c == color::green);
    CHECK((g.plain == want.plain));
}

/// The bytes of the segment `name`.
std::vector<unsigned char> segment_bytes(const std::string& name)
{
    return objects_util::read_file("/dev/shm/" + name);
}

struct two_ints {
    int a = 0;
    int b = 0;
    template <class A>
    void serialize(A& ar)
    {
        ar(a, b);
    }
};
struct one_int {
    int a = 0;
    template <class A>
    void serialize(A& ar)
    {
        ar(a);
    }
};
struct named {
    int id = 0;
    std::string text;
    template <class A>
    void serialize(A& ar)
    {
        ar(id, text);
    }
};
struct text_first {
    std::string text;
    int id = 0;
    template <class A>
    void serialize(A& ar)
    {
        ar(text, id);
    }
};

struct doubles {
    xt::xarray<double> a;
    template <class A>
    void serialize(A& ar)
    {
        ar(a);
    }
};
struct floats {
    xt::xarray<float> a;
    template <class A>
    void serialize(A& ar)
    {
        ar(a);
    }
};
struct rank3 {
    xt::xtensor<double, 3> a;
    template <class A>
    void serialize(A& ar)
    {
        ar(a);
    }
};
struct as_view {
    shared_ndarray<double> a;
    template <class A>
    void serialize(A& ar)
    {
        ar(a);
    }
};
struct as_const_view {
    shared_ndarray<const double> a;
    template <class A>
    void serialize(A& ar)
    {
        ar(a);
    }
};

// A type with split save/load members, one with a free serialize function, and one that derives.
struct split {
    int version = 0;
    xt::xarray<float> data;
    template <class A>
    void save(A& ar) const
    {
        ar(version, data);
    }
    template <class A>
    void load(A& ar)
    {
        ar(version, data);
    }
};
struct external {
    std::vector<float> v;
    xt::xarray<std::uint16_t> a;
};
template <class A>
void serialize(A& ar, external& e)
{
    ar(e.v, e.a);
}
struct base_part {
    int b = 0;
    template <class A>
    void serialize(A& ar)
    {
        ar(b);
    }
};
struct derived_part : base_part {
    shared_ndarray<double> d;
    template <class A>
    void serialize(A& ar)
    {
        ar(cereal::base_class<base_part>(this), d);
    }
};
struct custom {
    split s;
    external e;
    derived_part dp;
    template <class A>
    void serialize(A& ar)
    {
        ar(s, e, dp);
    }
};

struct many {
    std::vector<xt::xarray<double>> arrays;
    template <class A>
    void serialize(A& ar)
    {
        ar(arrays);
    }
};
struct many_views {
    std::vector<shared_ndarray<const double>> arrays;
    template <class A>
    void serialize(A& ar)
    {
        ar(arrays);
    }
};
struct pair_of_views {
    shared_ndarray<double> x;
    shared_ndarray<double> y;
    template <class A>
    void serialize(A& ar)
    {
        ar(x, y);
    }
};
struct vec {
    std::vector<double> v;
    template <class A>
    void serialize(A& ar)
    {
        ar(v);
    }
};
struct flag {
    bool f = true;
    template <class A>
    void serialize(A& ar)
    {
        ar(f);
    }
};
struct refuses {
    template <class A>
    void save(A&) const
    {
        throw cereal::Exception("cannot save this");
    }
    template <class A>
    void load(A&)
    {
    }
};

} // namespace

// Polymorphic pointers: cereal's usual registration, after ndshm's headers. cereal binds a registered
// type to every archive the program includes (ndshm/all.hpp brings cereal's binary archive through
// pool.hpp), so array members must serialise with those archives too: there they go by value.
struct shape_base {
    virtual ~shape_base() = default;
    virtual double area() const = 0;
    template <class A>
    void serialize(A&)
    {
    }
};
struct circle : shape_base {
    double r = 0;
    std::vector<double> outline;
    double area() const override { return 3.0 * r * r; }
    template <class A>
    void serialize(A& ar)
    {
        ar(cereal::base_class<shape_base>(this), r, outline);
    }
};
CEREAL_REGISTER_TYPE(circle)
struct image : shape_base {
    ndshm::shared_ndarray<float> pixels;
    ndshm::shared_tensor<std::int32_t, 2> labels;
    double area() const override { return static_cast<double>(pixels.size()); }
    template <class A>
    void serialize(A& ar)
    {
        ar(cereal::base_class<shape_base>(this), pixels, labels);
    }
};
CEREAL_REGISTER_TYPE(image)
struct scene {
    std::vector<std::shared_ptr<shape_base>> shapes;
    template <class A>
    void serialize(A& ar)
    {
        ar(shapes);
    }
};

TEST_CASE("share and load rebuild an object with every kind of member", "[object]")
{
    const rich r = make_rich();
    const ndshm::shared_object h = ndshm::share(r);
    REQUIRE(!h.empty());
    CHECK(h.name().rfind("ndshm_", 0) == 0);
    CHECK(test_util::shm_exists(h.name()));
    // fields (2), pixels, ro, fortran, parts' grids (2), spectra, mask, zero_d, empty; `none` is no array.
    CHECK(h.array_count() == 11);
    check_rich(ndshm::load<rich>(h.name()));
    check_rich(ndshm::load<rich>(h));
}

TEST_CASE("the object segment is a .npy of bytes with the documented layout", "[object]")
{
    const ndshm::shared_object h = ndshm::share(make_rich());
    const auto b = segment_bytes(h.name());
    REQUIRE(b.size() == h.segment_bytes());
    const auto info = ndshm::detail::parse_npy(b.data(), b.size(), h.name());
    CHECK(info.type == ndshm::dtype::uint8);
    CHECK(info.data_offset == 4096);
    const unsigned char* p = b.data() + 4096;
    CHECK(std::string(reinterpret_cast<const char*>(p), 8) == "NDSHMOBJ");
    CHECK(ndshm::detail::get_u64(p + 24) == h.array_count());
    CHECK(ndshm::detail::get_u64(p + 72) == info.nbytes);
    const auto obj = ndshm::detail::parse_object_payload(p, info.nbytes, 4096, "test", h.name());
    for (const auto& e : obj.entries) {
        CHECK(e.offset % 64 == 0);
    }
    // The trailer says composite object.
    const std::size_t t = ndshm::detail::trailer_offset(4096 + info.nbytes);
    REQUIRE(b.size() >= t + 256);
    CHECK(ndshm::detail::get_u32(b.data() + t + 16) == ndshm::detail::kind_object);
    // Attaching it as an array is refused.
    CHECK_THROWS_AS(shared_ndarray<std::uint8_t>::attach(h.name()), ndshm::format_error);
    CHECK_THROWS_WITH(ndshm::attach_any(h.name()), Catch::Contains("composite object"));
}

TEST_CASE("large arrays start on a page boundary", "[object]")
{
    doubles d{xt::zeros<double>({std::size_t(200000)})}; // 1.6 MB
    const ndshm::shared_object h = ndshm::share(d);
    as_view v = ndshm::load<as_view>(h);
    CHECK(reinterpret_cast<std::uintptr_t>(v.a.data()) % 4096 == 0);
    CHECK(v.a.size() == 200000);
}

TEST_CASE("share does not modify the object", "[object]")
{
    rich r = make_rich();
    const std::string pixels_name = r.pixels.name();
    const float* pixels_data = r.pixels.data();
    const double* field_data = r.fields["temperature"].data();
    {
        const ndshm::shared_object h = ndshm::share(r);
        check_rich(ndshm::load<rich>(h));
    }
    check_rich(r);
    CHECK(r.pixels.name() == pixels_name);
    CHECK(r.pixels.data() == pixels_data);
    CHECK((r.fields["temperature"].data() == field_data));
    CHECK(test_util::shm_exists(pixels_name));
}

TEST_CASE("shared_ndarray members are zero-copy views, xtensor members are copies", "[object][multiprocess]")
{
    rich r = make_rich();
    const ndshm::shared_object h = ndshm::share(r);
    rich a = ndshm::load<rich>(h.name());
    rich b = ndshm::load<rich>(h.name());
    // Views of the object segment, not of the original pixels segment.
    CHECK(a.pixels.name() == h.name());
    CHECK(a.pixels.data() != r.pixels.data());
    a.pixels(2, 3) = -1.0f;
    CHECK(b.pixels(2, 3) == -1.0f); // two loads, one segment
    CHECK(r.pixels(2, 3) == 19.0f); // the original is untouched
    // Another process writes through its own load; this one sees it.
    test_util::event written;
    const pid_t pid = test_util::fork_child([&] {
        rich c = ndshm::load<rich>(h.name());
        if (c.pixels(2, 3) != -1.0f) {
            return 1;
        }
        c.pixels(5, 7) = 123.0f;
        written.set();
        return 0;
    });
    CHECK(written.wait() == 1);
    CHECK(test_util::wait_child(pid).ok());
    CHECK(a.pixels(5, 7) == 123.0f);
    // xtensor members were copied out: changing one changes no other load.
    a.fields["temperature"](0, 0) = 99.0;
    CHECK((b.fields["temperature"](0, 0) == 1.5));
    CHECK((ndshm::load<rich>(h).fields["temperature"](0, 0) == 1.5));
}

TEST_CASE("an object with 10,000 arrays is one segment and one mapping", "[object]")
{
    many m;
    for (int i = 0; i < 10000; ++i) {
        m.arrays.push_back(xt::arange<double>(16.0) + i);
    }
    const int fds = test_util::open_fds();
    const ndshm::shared_object h = ndshm::share(m);
    CHECK(h.array_count() == 10000);
    CHECK(test_util::shm_exists(h.name()));
    CHECK(objects_util::mappings_of(h.name()) == 1); // the owner's mapping
    {
        const many_views v = ndshm::load<many_views>(h.name());
        REQUIRE(v.arrays.size() == 10000);
        CHECK(v.arrays[9999](15) == 9999.0 + 15.0);
        CHECK(v.arrays[1234].name() == h.name());
        CHECK(objects_util::mappings_of(h.name()) == 2); // plus one for the whole load
        CHECK(test_util::open_fds() == fds);
        const many copy = ndshm::load<many>(h.name());
        CHECK(copy.arrays[42] == m.arrays[42]);
    }
    CHECK(objects_util::mappings_of(h.name()) == 1);
}

TEST_CASE("handles that alias one array stay aliased", "[object]")
{
    pair_of_views p;
    p.x = shared_ndarray<double>::from_array(xt::xarray<double>{1, 2, 3});
    p.y = p.x;
    const auto h = ndshm::share(p);
    CHECK(h.array_count() == 1);
    auto q = ndshm::load<pair_of_views>(h);
    CHECK(q.x.data() == q.y.data());
    q.x(0) = 5;
    CHECK(q.y(0) == 5);
}

TEST_CASE("users' save/load, free serialize, base classes and polymorphic pointers work", "[object]")
{
    custom c;
    c.s.version = 3;
    c.s.data = xt::xarray<float>{1.f, 2.f};
    c.e.v = {0.5f};
    c.e.a = xt::xarray<std::uint16_t>{{1, 2}, {3, 65535}};
    c.dp.b = 11;
    c.dp.d = shared_ndarray<double>::from_array(xt::xarray<double>{4, 5});
    const auto h = ndshm::share(c);
    const custom g = ndshm::load<custom>(h.name());
    CHECK(g.s.version == 3);
    CHECK((g.s.data == c.s.data));
    CHECK((g.e.v == c.e.v));
    CHECK((g.e.a == c.e.a));
    CHECK(g.dp.b == 11);
    CHECK((g.dp.d.view() == c.dp.d.view()));

    scene s;
    auto ring = std::make_shared<circle>();
    ring->r = 2;
    ring->outline = {0.0, 0.25, 0.5};
    s.shapes = {ring, ring};
    const auto hs = ndshm::share(s);
    const scene t = ndshm::load<scene>(hs.name());
    REQUIRE(t.shapes.size() == 2);
    CHECK(t.shapes[0] == t.shapes[1]); // cereal keeps shared_ptr identity
    CHECK(t.shapes[0]->area() == 12.0);
    CHECK((dynamic_cast<const circle&>(*t.shapes[0]).outline == ring->outline));
}

TEST_CASE("polymorphic types with array members round-trip through share and load", "[object]")
{
    scene s;
    auto im = std::make_shared<image>();
    im->pixels = shared_ndarray<float>::from_array(xt::xarray<float>{{1, 2}, {3, 4}});
    im->labels = ndshm::shared_tensor<std::int32_t, 2>::create({2, 3}, ndshm::order::fortran);
    im->labels(1, 2) = 7;
    s.shapes = {im};
    const auto h = ndshm::share(s);
    scene t = ndshm::load<scene>(h.name());
    REQUIRE(t.shapes.size() == 1);
    const auto& back = dynamic_cast<const image&>(*t.shapes[0]);
    CHECK(back.area() == 4.0);
    CHECK(back.pixels(1, 0) == 3.0f);
    CHECK(back.pixels.name() == h.name()); // a view of the object's segment
    CHECK(back.labels(1, 2) == 7);
    CHECK(back.labels.fortran_order());
}

TEST_CASE("cereal's own archives store shared arrays by value", "[object]")
{
    image im;
    im.pixels = shared_ndarray<float>::from_array(xt::xarray<float>{{1, 2, 3}, {4, 5, 6}});
    im.labels = ndshm::shared_tensor<std::int32_t, 2>::create({2, 2}, ndshm::order::fortran);
    im.labels(0, 1) = -5;
    std::stringstream bytes;
    {
        cereal::BinaryOutputArchive out(bytes);
        out(im);
    }
    image back;
    {
        cereal::BinaryInputArchive in(bytes);
        in(back);
    }
    CHECK(back.pixels.shape() == ndshm::shape_type{2, 3});
    CHECK(back.pixels(1, 2) == 6.0f);
    CHECK(back.pixels.name() != im.pixels.name()); // a new segment, owned by the loader
    CHECK(back.labels.fortran_order());
    CHECK(back.labels(0, 1) == -5);
    std::stringstream empty_bytes;
    {
        cereal::BinaryOutputArchive out(empty_bytes);
        out(image());
    }
    cereal::BinaryInputArchive in(empty_bytes);
    image none;
    in(none);
    CHECK(none.pixels.empty());
    CHECK(none.labels.empty());
}

TEST_CASE("member types may change between xtensor containers and shared_ndarray", "[object]")
{
    doubles d{xt::xarray<double>{{1, 2}, {3, 4}}};
    const auto h = ndshm::share(d);
    const as_view v = ndshm::load<as_view>(h.name());
    CHECK((v.a.view() == d.a));
    as_view w;
    w.a = shared_ndarray<double>::create({2, 3}, ndshm::order::fortran);
    w.a.view() = xt::xarray<double>{{1, 2, 3}, {4, 5, 6}};
    const auto hw = ndshm::share(w);
    const doubles e = ndshm::load<doubles>(hw.name()); // Fortran order into a C-order xarray
    CHECK((e.a == xt::xarray<double>{{1, 2, 3}, {4, 5, 6}}));
}

TEST_CASE("an object loads in another process", "[object][multiprocess]")
{
    const auto h = ndshm::share(make_rich());
    const std::string name = h.name();
    CHECK(test_util::run_child([&] {
              const rich g = ndshm::load<rich>(name);
              const rich want = make_rich();
              const bool same = g.label == want.label && g.fields == want.fields &&
                                g.pixels.view() == want.pixels.view() && g.fortran.view() == want.fortran.view() &&
                                g.parts.size() == 2 && g.parts[0].grid == want.parts[0].grid && g.mask == want.mask &&
                                g.spectra == want.spectra && *g.owned == *want.owned && g.tup == want.tup;
              return same ? 0 : 1;
          }).ok());
}

TEST_CASE("object lifetime follows the rules of arrays", "[object][lifetime]")
{
    std::string name;
    rich loaded;
    {
        const ndshm::shared_object h = ndshm::share(make_rich());
        name = h.name();
        loaded = ndshm::load<rich>(name);
        // A forked child's copy of the handle never unlinks.
        CHECK(test_util::run_child([h] {
                  ndshm::shared_object copy = h;
                  copy.reset();
                  return 0;
              }).ok());
        CHECK(test_util::shm_exists(name));
    }
    CHECK(!test_util::shm_exists(name)); // the owner's last handle unlinked it
    CHECK(loaded.pixels(5, 7) == 47.0f); // loads stay valid
    CHECK_THROWS_AS(ndshm::load<rich>(name), ndshm::not_found);

    ndshm::shared_object p = ndshm::share(make_rich());
    const std::string kept = p.name();
    p.persist();
    p.reset();
    CHECK(test_util::shm_exists(kept));
    check_rich(ndshm::load<rich>(kept));
    ndshm::unlink(kept);
    CHECK(!test_util::shm_exists(kept));
    CHECK(ndshm::shared_object().name().empty());
}

TEST_CASE("share takes the options of create", "[object]")
{
    ndshm::options o;
    o.name = objects_util::unique_name("named_obj");
    const auto h = ndshm::share(make_rich(), o);
    CHECK(h.name() == o.name);
    CHECK_THROWS_AS(ndshm::share(make_rich(), o), ndshm::already_exists);
    objects_util::temp_dir dir("objdir");
    ndshm::options d;
    d.directory = dir.path();
    const auto hd = ndshm::share(make_rich(), d);
    CHECK(!test_util::shm_exists(hd.name()));
    CHECK(dir.entries() == std::vector<std::string>{hd.name()});
    check_rich(ndshm::load<rich>(hd.name(), d));
}

TEST_CASE("a read-only load needs shared_ndarray<const T> members", "[object]")
{
    doubles d{xt::xarray<double>{1, 2}};
    const auto h = ndshm::share(d);
    ndshm::options ro;
    ro.read_only = true;
    CHECK(ndshm::load<as_const_view>(h.name(), ro).a(1) == 2.0);
    CHECK(ndshm::load<doubles>(h.name(), ro).a(1) == 2.0);
    CHECK_THROWS_WITH(ndshm::load<as_view>(h.name(), ro), Catch::Contains("shared_ndarray<const T>"));
}

TEST_CASE("an array member of another element type is dtype_mismatch", "[object][bad-input]")
{
    const auto h = ndshm::share(doubles{xt::xarray<double>{1, 2}});
    CHECK_THROWS_AS(ndshm::load<floats>(h.name()), ndshm::dtype_mismatch);
    CHECK_THROWS_WITH(ndshm::load<floats>(h.name()), Catch::Contains("float64") && Catch::Contains("float32"));
    CHECK_THROWS_AS(ndshm::load<rank3>(h.name()), ndshm::serialization_error);
}

TEST_CASE("loading something that is not an object is format_error", "[object][bad-input]")
{
    CHECK_THROWS_AS(ndshm::load<rich>("ndshm_test_no_such_object"), ndshm::not_found);
    auto a = shared_ndarray<double>::create({4});
    CHECK_THROWS_AS(ndshm::load<rich>(a.name()), ndshm::format_error);
    CHECK_THROWS_WITH(ndshm::load<rich>(a.name()), Catch::Contains("single array"));
    // A .npy without ndshm's trailer (as NumPy would make it).
    auto bytes = segment_bytes(a.name());
    bytes.resize(4096 + 32);
    raw_segment foreign(bytes);
    CHECK_THROWS_WITH(ndshm::load<rich>(foreign.name), Catch::Contains("no ndshm trailer"));
    std::mt19937 rng(7);
    std::vector<unsigned char> noise(6000);
    for (auto& c : noise) {
        c = static_cast<unsigned char>(rng() | 1u);
    }
    raw_segment random(noise);
    CHECK_THROWS_AS(ndshm::load<rich>(random.name), ndshm::format_error);
}

TEST_CASE("a truncated object is format_error", "[object][bad-input]")
{
    const auto h = ndshm::share(make_rich());
    const auto good = segment_bytes(h.name());
    for (const std::size_t size : {std::size_t(100), std::size_t(4096), std::size_t(4096 + 64), std::size_t(4096 + 200),
                                   good.size() / 2, good.size() - 257, good.size() - 1}) {
        std::vector<unsigned char> b(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(size));
        raw_segment seg(b);
        CHECK_THROWS_AS(ndshm::load<rich>(seg.name), ndshm::format_error);
    }
}

TEST_CASE("a table of contents that points outside the segment is format_error", "[object][bad-input]")
{
    const auto h = ndshm::share(make_rich());
    const auto good = segment_bytes(h.name());
    using ndshm::detail::put_u64;
    const std::size_t payload = 4096;
    const std::size_t entry0 = payload + 128;
    const auto corrupt = [&](std::size_t at, std::uint64_t value, const std::string& text) {
        auto b = good;
        put_u64(b.data() + at, value);
        raw_segment seg(b);
        CHECK_THROWS_AS(ndshm::load<rich>(seg.name), ndshm::format_error);
        CHECK_THROWS_WITH(ndshm::load<rich>(seg.name), Catch::Contains(text) && Catch::Contains(seg.name));
    };
    corrupt(entry0 + 24, 1u << 30, "outside the payload");              // an array's offset
    corrupt(entry0 + 24, 64 * 1000000, "outside the payload");          // far outside
    corrupt(entry0 + 40, ~std::uint64_t(0) - 8, "stored size");         // stored size: overflow bait
    corrupt(entry0 + 32, 8, "byte count");                              // nbytes disagrees with the shape
    corrupt(entry0 + 16, ~std::uint64_t(0), "extents");                 // first extent index
    corrupt(payload + 24, std::uint64_t(1) << 58, "table of contents"); // array count
    corrupt(payload + 32, ~std::uint64_t(0) - 100, "table of contents");
    corrupt(payload + 48, std::uint64_t(1) << 61, "extents"); // dims count
    corrupt(payload + 56, ~std::uint64_t(0) - 3, "blob");     // blob offset
    corrupt(payload + 64, std::uint64_t(1) << 40, "blob");    // blob bytes
    corrupt(payload + 72, 12345, "payload bytes");
    corrupt(payload, 0, "magic");
    auto b = good;
    b[entry0] = 'X'; // descr
    raw_segment bad_descr(b);
    CHECK_THROWS_WITH(ndshm::load<rich>(bad_descr.name), Catch::Contains("dtype"));
    b = good;
    b[entry0 + 12] = 0x80; // unknown flag
    raw_segment bad_flags(b);
    CHECK_THROWS_WITH(ndshm::load<rich>(bad_flags.name), Catch::Contains("flags"));
}

TEST_CASE("a blob that does not decode as T is serialization_error", "[object][bad-input]")
{
    using ndshm::detail::get_u64;
    using ndshm::detail::put_u64;
    // Another type.
    const auto h = ndshm::share(named{3, "three"});
    CHECK_THROWS_AS(ndshm::load<text_first>(h.name()), ndshm::serialization_error);
    CHECK_THROWS_AS(ndshm::load<rich>(h.name()), ndshm::serialization_error);
    // Bytes left over.
    const auto h2 = ndshm::share(two_ints{1, 2});
    CHECK_THROWS_WITH(ndshm::load<one_int>(h2.name()), Catch::Contains("left over"));
    const auto blob_at = [](const std::vector<unsigned char>& b) {
        return 4096 + static_cast<std::size_t>(get_u64(b.data() + 4096 + 56));
    };
    // A container size far beyond the blob: refused before anything is allocated.
    const auto hv = ndshm::share(vec{{1, 2, 3}});
    auto b = segment_bytes(hv.name());
    put_u64(b.data() + blob_at(b), std::uint64_t(1) << 40);
    raw_segment huge(b);
    CHECK_THROWS_WITH(ndshm::load<vec>(huge.name), Catch::Contains("claims"));
    // A bool that is neither 0 nor 1.
    const auto hf = ndshm::share(flag{});
    b = segment_bytes(hf.name());
    b[blob_at(b)] = 2;
    raw_segment bad_bool(b);
    CHECK_THROWS_AS(ndshm::load<flag>(bad_bool.name), ndshm::serialization_error);
    // An array index beyond the table of contents.
    const auto hd = ndshm::share(doubles{xt::xarray<double>{1}});
    b = segment_bytes(hd.name());
    put_u64(b.data() + blob_at(b), 5);
    raw_segment bad_index(b);
    CHECK_THROWS_WITH(ndshm::load<doubles>(bad_index.name), Catch::Contains("refers to array 5"));
}

TEST_CASE("random corruption of an object never crashes", "[object][bad-input]")
{
    const auto h = ndshm::share(make_rich());
    const auto good = segment_bytes(h.name());
    const auto info = ndshm::detail::parse_npy(good.data(), good.size(), h.name());
    const std::size_t end = static_cast<std::size_t>(4096 + ndshm::detail::get_u64(good.data() + 4096 + 56) +
                                                     ndshm::detail::get_u64(good.data() + 4096 + 64));
    REQUIRE(end <= 4096 + info.nbytes);
    std::mt19937 rng(2024);
    int threw = 0;
    int loaded = 0;
    for (int round = 0; round < 400; ++round) {
        auto b = good;
        const int flips = 1 + static_cast<int>(rng() % 4);
        for (int k = 0; k < flips; ++k) { // header, table of contents, extents and blob
            const std::size_t at = 4096 + rng() % (end - 4096);
            b[at] = static_cast<unsigned char>(rng());
        }
        raw_segment seg(b);
        try {
            (void)ndshm::load<rich>(seg.name);
            ++loaded;
        } catch (const ndshm::error&) {
            ++threw;
        }
    }
    CHECK(threw + loaded == 400);
    CHECK(threw > 0);
}

TEST_CASE("an error in the user's serialisation is serialization_error", "[object][bad-input]")
{
    CHECK_THROWS_AS(ndshm::share(refuses{}), ndshm::serialization_error);
    CHECK_THROWS_WITH(ndshm::share(refuses{}), Catch::Contains("cannot save this"));
}

TEST_CASE("a moved-from or reset shared_object is empty", "[object][lifetime]")
{
    auto h = ndshm::share(std::vector<int>{1, 2, 3});
    const std::string name = h.name();
    auto moved = std::move(h);
    for (auto* o : {&h, &moved}) {
        if (o == &moved) {
            CHECK(moved.name() == name);
            CHECK(moved.segment_bytes() > 0);
            moved.reset();
        }
        CHECK(o->empty());
        CHECK_FALSE(static_cast<bool>(*o));
        CHECK(o->name().empty());
        CHECK(o->array_count() == 0);
        CHECK(o->segment_bytes() == 0);
        o->persist();
    }
    CHECK_FALSE(test_util::shm_exists(name)); // the owner's last handle unlinked it
}

TEST_CASE("objects shared into a queue's recycled segments: no new segment once the pool is warm", "[object][queue]")
{
    auto q = ndshm::array_queue::create(2);
    std::set<std::string> names;
    for (int round = 0; round < 5; ++round) {
        q.push(ndshm::share(make_rich(), q));
        CHECK(q.front_is_object());
        CHECK_THROWS_WITH(q.pop<double>(), Catch::Contains("pop_object"));
        ndshm::shared_object h = q.pop_object();
        REQUIRE_FALSE(h.empty());
        CHECK(h.array_count() == 11);
        names.insert(h.name());
        check_rich(ndshm::load<rich>(h));
        const rich views = ndshm::load<rich>(h);
        h.reset(); // the loaded views keep it: it goes back to the queue when they go
        CHECK(test_util::shm_exists(*names.begin()));
        CHECK(views.pixels(5, 7) == make_rich().pixels(5, 7));
    }
    CHECK(names.size() == 1); // one segment carried every round
    CHECK(q.reused() == 4);

    SECTION("a larger object takes a new segment, a smaller one reuses one that has the room")
    {
        many big;
        for (int i = 0; i < 200; ++i) {
            big.arrays.push_back(xt::arange<double>(128) + i);
        }
        q.push(ndshm::share(big, q));
        auto h = q.pop_object();
        CHECK(names.count(h.name()) == 0);
        const many back = ndshm::load<many>(h);
        REQUIRE(back.arrays.size() == 200);
        CHECK(back.arrays[199](127) == 127 + 199);
        h.reset();
        many smaller = big;
        smaller.arrays.resize(150);
        q.push(ndshm::share(smaller, q));
        auto h2 = q.pop_object();
        CHECK(ndshm::load<many>(h2).arrays.size() == 150);
        CHECK(q.reused() == 5);
    }
    SECTION("the object's segment stays a valid object for every tool")
    {
        q.push(ndshm::share(make_rich(), q));
        auto h = q.pop_object();
        const auto s = ndshm::inspect(h.name());
        CHECK(s.kind == ndshm::segment_kind::object);
        check_rich(ndshm::load<rich>(h.name()));
    }
}

TEST_CASE("objects and arrays from the same pool trade segments of the right size", "[object][queue]")
{
    auto q = ndshm::array_queue::create(2);
    pair_of_views p{shared_ndarray<double>::create({100}), shared_ndarray<double>::create({100})};
    p.x(99) = 1;
    p.y(99) = 2;
    q.push(ndshm::share(p, q));
    std::string name;
    {
        auto h = q.pop_object();
        name = h.name();
        const auto back = ndshm::load<pair_of_views>(h);
        CHECK(back.y(99) == 2);
    } // back to the pool
    const auto bytes = ndshm::inspect(name).bytes;
    // An array of about the same size reuses the object's segment: a plain .npy again.
    auto a = q.make<std::uint8_t>({static_cast<std::size_t>(bytes) - 4096 - 256 - 64});
    CHECK(a.name() == name);
    q.push(std::move(a));
    auto b = q.pop<std::uint8_t>();
    CHECK(ndshm::inspect(name).kind == ndshm::segment_kind::array);
    CHECK(ndshm::attach_any(name).dtype() == ndshm::dtype::uint8);
}
