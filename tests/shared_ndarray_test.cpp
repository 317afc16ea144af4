#include <ndshm/any_ndarray.hpp>
#include <ndshm/shared_ndarray.hpp>
#include <ndshm/shared_tensor.hpp>

#include "sys_counter.hpp"
#include "test_util.hpp"

#include <catch2/catch.hpp>
#include <xtensor/xbuilder.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xview.hpp>

#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <complex>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

using ndshm::shared_ndarray;

namespace {

std::vector<unsigned char> file_bytes(const std::string& name)
{
    std::ifstream f("/dev/shm/" + name, std::ios::binary);
    return std::vector<unsigned char>(std::istreambuf_iterator<char>(f), {});
}

} // namespace

TEST_CASE("create makes a zero-filled, auto-named, owned array", "[shared_ndarray]")
{
    auto a = shared_ndarray<double>::create({1000, 3});
    CHECK(a.shape() == ndshm::shape_type{1000, 3});
    CHECK(a.size() == 3000);
    CHECK(a.dimension() == 2);
    CHECK(a.dtype() == ndshm::dtype::float64);
    CHECK_FALSE(a.fortran_order());
    CHECK(xt::sum(a.view())() == 0.0);
    CHECK(a.name().rfind("ndshm_", 0) == 0);
    CHECK(a.name().size() <= 30);
    CHECK(test_util::shm_exists(a.name()));
    CHECK(reinterpret_cast<std::uintptr_t>(a.data()) % 4096 == 0);
}

TEST_CASE("element access and the xtensor view write the shared bytes", "[shared_ndarray]")
{
    auto a = shared_ndarray<double>::create({4, 3});
    a(0, 1) = 2.5;
    a.view() += 1.0;
    CHECK(a(0, 1) == 3.5);
    CHECK(a(3, 2) == 1.0);
    CHECK(a.data()[1] == 3.5);
    xt::view(a.view(), 2, xt::all()) = xt::arange<double>(3);
    CHECK(a(2, 2) == 2.0);
    CHECK(xt::sum(a.view())() == Approx(12 * 1.0 + 2.5 + 0 + 1 + 2 - 3));
    CHECK(xt::amax(a.view())() == 3.5);
    // Another handle of the same segment sees the writes: the view is the mapping, not a copy.
    auto b = shared_ndarray<double>::attach(a.name());
    CHECK(b(0, 1) == 3.5);
    b(3, 0) = -7;
    CHECK(a(3, 0) == -7);
    // xtensor's indexing rule: fewer indices address the last dimensions.
    CHECK(a(1) == a(0, 1));
}

TEST_CASE("from_array copies an expression or a buffer in", "[shared_ndarray]")
{
    auto b = shared_ndarray<float>::from_array(xt::arange<float>(10));
    CHECK(b.shape() == ndshm::shape_type{10});
    CHECK(b(7) == 7.0f);
    const xt::xarray<std::int32_t> m = {{1, 2, 3}, {4, 5, 6}};
    auto c = shared_ndarray<std::int32_t>::from_array(m * 2);
    CHECK(c.shape() == ndshm::shape_type{2, 3});
    CHECK(c(1, 2) == 12);
    const std::vector<std::uint16_t> raw{1, 2, 3, 4, 5, 6};
    auto d = shared_ndarray<std::uint16_t>::from_array(raw.data(), {3, 2});
    CHECK(d(2, 1) == 6);
    CHECK(bool(d.view() == xt::xarray<std::uint16_t>{{1, 2}, {3, 4}, {5, 6}}));
}

TEST_CASE("attach reads shape, dtype and order from the segment", "[shared_ndarray]")
{
    auto a = shared_ndarray<std::int64_t>::create({2, 3, 4});
    a(1, 2, 3) = 42;
    auto b = shared_ndarray<std::int64_t>::attach(a.name());
    CHECK(b.shape() == a.shape());
    CHECK(b(1, 2, 3) == 42);
    CHECK(b.name() == a.name());
    CHECK(b.data() == a.data()); // a segment this process maps already: the mapping is shared
}

TEST_CASE("attach shares a mapping this process has, and only of the same file", "[shared_ndarray][lifetime]")
{
    ndshm::options o;
    o.name = "ndshm_test_share_" + std::to_string(::getpid());
    auto a = shared_ndarray<double>::create({4}, o);
    a(1) = 1.0;
    auto b = shared_ndarray<double>::attach(o.name);
    CHECK(b.data() == a.data());
    // A read-only handle gets a read-only mapping of its own.
    auto r = shared_ndarray<const double>::attach(o.name);
    CHECK(r.data() != a.data());
    CHECK(r(1) == 1.0);
    // The name unlinked and created again names another file: a new mapping, the new contents.
    a.persist();
    ndshm::unlink(o.name);
    auto fresh = shared_ndarray<double>::create({4}, o);
    fresh(1) = 2.0;
    a.reset();
    auto c = shared_ndarray<double>::attach(o.name);
    CHECK(c.data() == fresh.data());
    CHECK(c(1) == 2.0);
    CHECK(b(1) == 1.0); // the old file, still mapped by b
    // When every handle is gone, the next attach maps the segment again, and the owner's unlink still
    // happens when the owner's last handle goes, whoever shares its memory.
    b.reset();
    r.reset();
    fresh.persist();
    fresh.reset();
    c.reset();
    auto d = shared_ndarray<double>::attach(o.name);
    CHECK(d(1) == 2.0);
    ndshm::unlink(o.name);
}

TEST_CASE("an attached handle that shares the owner's mapping does not keep the name", "[shared_ndarray][lifetime]")
{
    auto a = shared_ndarray<float>::create({8});
    const std::string name = a.name();
    auto b = shared_ndarray<float>::attach(name);
    REQUIRE(b.data() == a.data());
    a.reset(); // the owner's last handle: the name goes, b's memory stays
    CHECK_FALSE(test_util::shm_exists(name));
    b(7) = 3.0f;
    CHECK(b(7) == 3.0f);
}

TEMPLATE_TEST_CASE("every dtype round-trips through a segment", "[shared_ndarray]", bool, std::int8_t, std::int16_t,
                   std::int32_t, std::int64_t, std::uint8_t, std::uint16_t, std::uint32_t, std::uint64_t, float, double,
                   std::complex<float>, std::complex<double>)
{
    auto a = shared_ndarray<TestType>::create({5});
    a(3) = TestType(1);
    auto b = shared_ndarray<TestType>::attach(a.name());
    CHECK(b(3) == TestType(1));
    CHECK(b(2) == TestType(0));
    const auto bytes = file_bytes(a.name());
    const std::string header(bytes.begin() + 10, bytes.begin() + 4096);
    CHECK(header.find(std::string("'descr': '") + ndshm::dtype_descr(ndshm::dtype_of<TestType>) + "'") !=
          std::string::npos);
}

TEST_CASE("Fortran order: column-major data, fortran_order in the header", "[shared_ndarray]")
{
    auto a = shared_ndarray<double>::create({2, 3}, ndshm::order::fortran);
    CHECK(a.fortran_order());
    a.view() = xt::xarray<double>{{1, 2, 3}, {4, 5, 6}};
    // Column-major: memory holds 1 4 2 5 3 6.
    CHECK(std::vector<double>(a.begin(), a.end()) == std::vector<double>{1, 4, 2, 5, 3, 6});
    CHECK(a(1, 0) == 4);
    auto b = shared_ndarray<double>::attach(a.name());
    CHECK(b.fortran_order());
    CHECK(b(0, 2) == 3);
    CHECK(bool(b.view() == xt::xarray<double>{{1, 2, 3}, {4, 5, 6}}));
}

TEST_CASE("0-d and empty arrays", "[shared_ndarray]")
{
    auto s = shared_ndarray<double>::create({});
    CHECK(s.size() == 1);
    CHECK(s.dimension() == 0);
    s() = 4.0;
    CHECK(shared_ndarray<double>::attach(s.name())() == 4.0);
    auto e = shared_ndarray<float>::create({0, 3});
    CHECK(e.size() == 0);
    CHECK(shared_ndarray<float>::attach(e.name()).shape() == ndshm::shape_type{0, 3});
}

TEST_CASE("an empty handle is safe", "[shared_ndarray]")
{
    shared_ndarray<double> a;
    CHECK(a.empty());
    CHECK_FALSE(a);
    CHECK(a.size() == 0);
    CHECK(a.name().empty());
    CHECK(a.view().size() == 0);
    a.persist();
    a.reset();
}

TEST_CASE("segments are created 0600 (or exactly the requested mode)", "[shared_ndarray][security]")
{
    const auto old = ::umask(0);
    auto a = shared_ndarray<double>::create({3});
    ndshm::options o;
    o.mode = 0640;
    auto b = shared_ndarray<double>::create({3}, o);
    ::umask(old);
    struct stat st {};
    REQUIRE(::stat(("/dev/shm/" + a.name()).c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    REQUIRE(::stat(("/dev/shm/" + b.name()).c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0640);
}

TEST_CASE("user-chosen names, options and alignment", "[shared_ndarray]")
{
    ndshm::options o;
    o.name = "ndshm_test_named_" + std::to_string(::getpid());
    o.populate = true;
    o.alignment = 4096;
    auto a = shared_ndarray<std::uint8_t>::create({100}, o);
    CHECK(a.name() == o.name);
    CHECK(reinterpret_cast<std::uintptr_t>(a.data()) % 4096 == 0);
    auto b = shared_ndarray<std::uint8_t>::attach(o.name);
    CHECK(reinterpret_cast<std::uintptr_t>(b.data()) % 4096 == 0);
    o.name.clear();
    for (std::size_t bad : {std::size_t(0), std::size_t(3), std::size_t(8192)}) {
        o.alignment = bad;
        CHECK_THROWS_WITH(shared_ndarray<double>::create({1}, o), Catch::Contains("alignment"));
    }
}

TEST_CASE("the last owning handle unlinks, attached handles never do", "[shared_ndarray][lifetime]")
{
    std::string name;
    {
        auto a = shared_ndarray<double>::create({8});
        name = a.name();
        auto copy = a; // copies share one mapping
        CHECK(copy.data() == a.data());
        a.reset();
        CHECK(test_util::shm_exists(name));
        {
            auto att = shared_ndarray<double>::attach(name);
        }
        CHECK(test_util::shm_exists(name)); // an attached handle going away changes nothing
    }
    CHECK_FALSE(test_util::shm_exists(name));
}

TEST_CASE("mappings outlive the name", "[shared_ndarray][lifetime]")
{
    auto a = shared_ndarray<double>::create({8});
    auto b = shared_ndarray<double>::attach(a.name());
    ndshm::unlink(a.name());
    CHECK_FALSE(test_util::shm_exists(a.name()));
    b(7) = 1.5; // still mapped
    CHECK(a(7) == 1.5);
    CHECK_THROWS_AS(shared_ndarray<double>::attach(a.name()), ndshm::not_found);
}

TEST_CASE("persist hands the name over until ndshm::unlink", "[shared_ndarray][lifetime]")
{
    std::string name;
    {
        auto a = shared_ndarray<double>::create({8});
        name = a.name();
        a.persist();
    }
    CHECK(test_util::shm_exists(name));
    auto b = shared_ndarray<double>::attach(name);
    ndshm::unlink(name);
    CHECK_FALSE(test_util::shm_exists(name));
    CHECK_THROWS_AS(ndshm::unlink(name), ndshm::not_found);
}

TEST_CASE("a read-only handle maps PROT_READ", "[shared_ndarray][security]")
{
    auto a = shared_ndarray<double>::create({4});
    a(2) = 3.0;
    auto r = shared_ndarray<const double>::attach(a.name());
    CHECK(r(2) == 3.0);
    CHECK(xt::sum(r.view())() == 3.0);
    const shared_ndarray<const double> converted = a; // writable -> read-only shares the mapping
    CHECK(converted.data() == a.data());
    ndshm::options ro;
    ro.read_only = true;
    CHECK_THROWS_AS(shared_ndarray<double>::attach(a.name(), ro), ndshm::error);
    // Writing through the read-only mapping faults: proven in a child.
    const auto st = test_util::run_child([&] {
        std::signal(SIGSEGV, SIG_DFL); // a sanitizer's handler would turn the fault into an exit code
        const_cast<double*>(r.data())[0] = 1.0;
        return 0;
    });
    CHECK(st.signal == SIGSEGV);
    CHECK(a(0) == 0.0);
}

namespace {

/// Calls every member of a handle that has no segment and checks that it is empty in every
/// observable way (run under ASan by `quickstart.sh sanitize`: any stale pointer would be reported).
template <class H>
void check_empty_handle(H& h)
{
    CHECK(h.empty());
    CHECK_FALSE(static_cast<bool>(h));
    CHECK(h.size() == 0);
    CHECK(h.nbytes() == 0);
    CHECK(h.data() == nullptr);
    CHECK(h.begin() == h.end());
    CHECK(h.cbegin() == h.cend());
    CHECK(h.name().empty());
    CHECK_FALSE(h.fortran_order());
    std::size_t visited = 0;
    for (const auto& x : h) {
        (void)x;
        ++visited;
    }
    CHECK(visited == 0);
    CHECK(h.view().size() == 0);
    CHECK(std::as_const(h).view().size() == 0);
    CHECK(xt::sum(h.view())() == 0);
    CHECK_THROWS_AS(h.at(0), std::out_of_range);
    CHECK_THROWS_AS(h.at(0, 0), std::out_of_range);
    CHECK_FALSE(h.in_bounds(0));
    CHECK_THROWS_AS(h.shape(0), std::out_of_range);
    CHECK(h.strides().empty());
    CHECK(h.copy().size() == 0);
    h.pin(); // nothing to pin, unpin or flush
    h.unpin();
    h.flush();
    if constexpr (!std::is_const_v<std::remove_reference_t<decltype(*h.data())>>) {
        CHECK_THROWS_WITH(h.reshape({0}), Catch::Contains("empty"));
        h.fill(1); // no element to set
    }
    {
        // No rank to keep and no elements to copy: a new zero-filled array of the shape asked for.
        auto grown = h.resized({2, 3});
        CHECK(grown.size() == 6);
        CHECK(grown(1, 2) == 0);
    }
    h.persist();
    h.reset();
    CHECK(h.empty());
}

} // namespace

TEST_CASE("a moved-from or reset handle is empty in every observable way", "[shared_ndarray][lifetime]")
{
    SECTION("shared_ndarray<T>, moved from")
    {
        auto a = shared_ndarray<double>::create({4, 5});
        const std::string name = a.name();
        auto c = std::move(a);
        check_empty_handle(a); // NOLINT(bugprone-use-after-move): what this test is about
        CHECK(a.dimension() == 0);
        CHECK(a.shape().empty());
        CHECK(a.strides().empty());
        CHECK(c.size() == 20);
        CHECK(c.name() == name);
        c(0, 0) = 7.0;
        CHECK(shared_ndarray<double>::attach(name)(0, 0) == 7.0);
    }
    SECTION("shared_ndarray<T>, move-assigned from, and reset")
    {
        auto a = shared_ndarray<float>::create({3}, ndshm::order::fortran);
        auto b = shared_ndarray<float>::create({2, 2}, ndshm::order::fortran);
        b = std::move(a);
        check_empty_handle(a); // NOLINT(bugprone-use-after-move)
        CHECK(b.shape() == ndshm::shape_type{3});
        b.reset();
        check_empty_handle(b);
        CHECK(b.dimension() == 0);
    }
    SECTION("shared_ndarray<const T>")
    {
        auto w = shared_ndarray<std::int16_t>::create({6});
        shared_ndarray<const std::int16_t> r = w;
        auto r2 = std::move(r);
        check_empty_handle(r); // NOLINT(bugprone-use-after-move)
        CHECK(r2.size() == 6);
        r2.reset();
        check_empty_handle(r2);
    }
    SECTION("elements of a vector of handles")
    {
        std::vector<shared_ndarray<double>> v;
        v.push_back(shared_ndarray<double>::create({8}));
        v.push_back(shared_ndarray<double>::create({8}));
        auto taken = std::move(v[0]);
        v.erase(v.begin() + 1);
        std::size_t n = 0;
        for (double x : v[0]) {
            n += x == 0.0 ? 1 : 0;
        }
        CHECK(n == 0);
        CHECK(taken.size() == 8);
    }
    SECTION("any_ndarray")
    {
        auto a = shared_ndarray<double>::create({2, 3});
        auto any = ndshm::attach_any(a.name());
        auto moved = std::move(any);
        for (auto* h : {&any, &moved}) {
            if (h == &moved) {
                CHECK(moved.size() == 6);
                moved.reset();
            }
            CHECK(h->empty());
            CHECK(h->size() == 0);
            CHECK(h->nbytes() == 0);
            CHECK(h->dimension() == 0);
            CHECK(h->shape().empty());
            CHECK(h->data() == nullptr);
            CHECK(h->name().empty());
            CHECK_FALSE(h->read_only());
            CHECK_FALSE(h->has_trailer());
            CHECK(h->visit([](auto x) { return x.size(); }) == 0);
            CHECK(h->dtype() == ndshm::dtype::float64); // NumPy's default dtype, as for np.empty(0)
            CHECK_FALSE(h->fortran_order());
            auto typed = h->as<std::int32_t>(); // any T: there is no dtype to disagree with
            check_empty_handle(typed);
            auto typed_const = h->as<const double>();
            check_empty_handle(typed_const);
            auto tensor = h->as_tensor<float, 2>();
            CHECK(tensor.empty());
            CHECK(tensor.size() == 0);
            CHECK(tensor.data() == nullptr);
        }
    }
}

TEST_CASE("at() checks the index count and every bound", "[shared_ndarray]")
{
    auto c = shared_ndarray<double>::create({4, 5});
    c.at(3, 4) = 1.5;
    CHECK(c(3, 4) == 1.5);
    CHECK(std::as_const(c).at(3, 4) == 1.5);
    try {
        c.at(1);
        FAIL("at(1) on a 4x5 array did not throw");
    } catch (const std::out_of_range& e) {
        const std::string m = e.what();
        CHECK_THAT(m, Catch::Contains("at(1)") && Catch::Contains("(4, 5)") && Catch::Contains("1 indices for 2"));
    }
    try {
        c.at(4, 0);
        FAIL("at(4, 0) did not throw");
    } catch (const std::out_of_range& e) {
        CHECK_THAT(std::string(e.what()),
                   Catch::Contains("index 4 is out of range for axis 0 (size 4)") && Catch::Contains(c.name()));
    }
    CHECK_THROWS_AS(c.at(0, 5), std::out_of_range);
    CHECK_THROWS_AS(c.at(-1, 0), std::out_of_range);
    CHECK_THROWS_AS(c.at(0, 0, 0), std::out_of_range);
    auto s = shared_ndarray<int>::create({}); // 0-d: no index
    s.at() = 3;
    CHECK(s() == 3);
}

TEST_CASE("xtensor's container accessors: element, operator[], in_bounds, shape(axis), fill", "[shared_ndarray]")
{
    for (const auto ord : {ndshm::order::c, ndshm::order::fortran}) {
        auto a = shared_ndarray<int>::create({3, 4}, ord);
        a.fill(7);
        CHECK(std::count(a.begin(), a.end(), 7) == 12);
        a(2, 1) = 5;
        const std::vector<std::size_t> idx{2, 1};
        CHECK(a.element(idx.begin(), idx.end()) == 5);
        CHECK(a[idx] == 5);
        CHECK(a[std::array<int, 2>{2, 1}] == 5);
        CHECK(a[{2, 1}] == 5);
        CHECK(std::as_const(a)[{2, 1}] == 5);
        a[{0, 3}] = 9;
        CHECK(a(0, 3) == 9);
        CHECK(a.view()(0, 3) == 9);
        // As in xtensor: indices address the last dimensions, a[i] is a(i).
        CHECK(a[3] == a(0, 3));
        const std::vector<long> one{3};
        CHECK(a.element(one.begin(), one.end()) == 9);
        const std::vector<long> three{8, 2, 1};
        CHECK(a.element(three.begin(), three.end()) == 5);
        CHECK(a.in_bounds(2, 3));
        CHECK_FALSE(a.in_bounds(3, 0));
        CHECK_FALSE(a.in_bounds(0, 4));
        CHECK_FALSE(a.in_bounds(-1, 0));
        CHECK_FALSE(a.in_bounds(1));
        CHECK_FALSE(a.in_bounds(0, 0, 0));
        CHECK(a.shape(0) == 3);
        CHECK(a.shape(1) == 4);
        CHECK_THROWS_WITH(a.shape(2), Catch::Contains("shape(2)") && Catch::Contains("(3, 4)") &&
                                          Catch::Contains("no axis 2 (2 dimensions)") && Catch::Contains(a.name()));
        auto r = shared_ndarray<const int>::attach(a.name());
        CHECK(r[{2, 1}] == 5);
        CHECK(r.shape(1) == 4);
        CHECK(r.in_bounds(0, 0));
    }
    auto t = ndshm::shared_tensor<double, 3>::create({2, 3, 4});
    t.fill(0.5);
    t[{1, 2, 3}] = 2.0;
    CHECK(t(1, 2, 3) == 2.0);
    CHECK(t.shape(2) == 4);
    CHECK(t.in_bounds(1, 2, 3));
    CHECK_FALSE(t.in_bounds(2, 0, 0));
    CHECK(xt::sum(t.view())() == Approx(0.5 * 23 + 2.0));
    auto s = shared_ndarray<int>::create({}); // 0-d: one element, no index
    s.fill(4);
    CHECK(s() == 4);
    CHECK(s.in_bounds());
    CHECK_THROWS_AS(s.shape(0), std::out_of_range);
}

TEST_CASE("at() builds its message only when it throws, and names negative indices as given", "[shared_ndarray]")
{
    auto c = shared_ndarray<double>::create({4, 5});
    CHECK_THROWS_WITH(c.at(-1, 0),
                      Catch::Contains("at(-1, 0)") && Catch::Contains("index -1 is out of range for axis 0"));
    CHECK_THROWS_WITH(c.at(std::size_t{1}, 7), Catch::Contains("index 7 is out of range for axis 1 (size 5)"));
    CHECK_THROWS_WITH(c.at(true, 9u), Catch::Contains("at(1, 9)"));
}

TEST_CASE("a POSIX-style name with a leading slash names the same segment", "[shared_ndarray]")
{
    ndshm::options o;
    o.name = "/ndshm_test_slash_" + std::to_string(::getpid());
    auto a = shared_ndarray<double>::create({2}, o);
    CHECK(a.name() == o.name.substr(1));
    a(1) = 4.0;
    CHECK(shared_ndarray<double>::attach(o.name)(1) == 4.0);
    CHECK(shared_ndarray<double>::attach(a.name())(1) == 4.0);
    a.persist();
    ndshm::unlink(o.name);
    CHECK_THROWS_AS(shared_ndarray<double>::attach(a.name()), ndshm::not_found);
    ndshm::options bad;
    bad.name = "a/b";
    try {
        (void)shared_ndarray<double>::create({2}, bad);
        FAIL("a name with an inner slash was accepted");
    } catch (const ndshm::error& e) {
        CHECK_THAT(std::string(e.what()), Catch::Contains("leading '/'"));
        CHECK(e.code() == ndshm::errc::invalid_argument);
        CHECK(e.code() == std::errc::invalid_argument);
    }
}

TEST_CASE("reshape rewrites the header: new attaches see the new shape, old handles keep theirs", "[shared_ndarray]")
{
    for (auto ord : {ndshm::order::c, ndshm::order::fortran}) {
        auto a = shared_ndarray<std::int32_t>::create({4, 6}, ord);
        for (std::size_t i = 0; i < a.size(); ++i) {
            a.data()[i] = static_cast<std::int32_t>(i);
        }
        auto before = shared_ndarray<std::int32_t>::attach(a.name());
        a.reshape({2, 3, 4});
        CHECK(a.shape() == ndshm::shape_type{2, 3, 4});
        CHECK(a.data()[23] == 23); // the same bytes
        CHECK(before.shape() == ndshm::shape_type{4, 6});
        auto after = shared_ndarray<std::int32_t>::attach(a.name());
        CHECK(after.shape() == ndshm::shape_type{2, 3, 4});
        CHECK(after.fortran_order() == (ord == ndshm::order::fortran));
        CHECK(bool(after.view() == a.view()));
        // Another process attaching now sees the new shape too.
        const auto child = test_util::run_child([&] {
            auto c = shared_ndarray<std::int32_t>::attach(a.name());
            return c.shape() == ndshm::shape_type{2, 3, 4} && c(1, 2, 3) == a(1, 2, 3) ? 0 : 1;
        });
        CHECK(child.ok());
        CHECK_THROWS_WITH(a.reshape({5, 5}), Catch::Contains("does not hold the 24 elements"));
        CHECK(a.shape() == ndshm::shape_type{2, 3, 4});
    }
    auto t = ndshm::shared_tensor<float, 2>::create({2, 8});
    t.reshape({4, 4});
    CHECK(ndshm::shared_tensor<float, 2>::attach(t.name()).shape() == std::array<std::size_t, 2>{4, 4});
    shared_ndarray<double> empty;
    CHECK_THROWS_AS(empty.reshape({1}), ndshm::error);
}

TEST_CASE("resized makes a larger or smaller array holding the common elements", "[shared_ndarray]")
{
    for (auto ord : {ndshm::order::c, ndshm::order::fortran}) {
        auto a = shared_ndarray<double>::create({3, 4}, ord);
        a.view() = xt::arange<double>(12).reshape({3, 4});
        auto g = a.resized({5, 6});
        CHECK(g.name() != a.name());
        CHECK(g.fortran_order() == a.fortran_order());
        CHECK(bool(xt::view(g.view(), xt::range(0, 3), xt::range(0, 4)) == a.view()));
        CHECK(xt::sum(xt::view(g.view(), xt::range(3, 5), xt::all()))() == 0.0);
        CHECK(xt::sum(xt::view(g.view(), xt::all(), xt::range(4, 6)))() == 0.0);
        auto s = a.resized({2, 2});
        CHECK(bool(s.view() == xt::view(a.view(), xt::range(0, 2), xt::range(0, 2))));
        CHECK_THROWS_AS(a.resized({12}), ndshm::error);
    }
    const auto t = ndshm::shared_tensor<std::int16_t, 1>::from_array(xt::arange<std::int16_t>(3));
    const auto longer = t.resized({5});
    CHECK(longer(2) == 2);
    CHECK(longer(4) == 0);
}

TEST_CASE("copy() is a process-local xarray of the elements", "[shared_ndarray]")
{
    auto f = shared_ndarray<float>::create({2, 3}, ndshm::order::fortran);
    f.view() = xt::xarray<float>{{1, 2, 3}, {4, 5, 6}};
    xt::xarray<float> c = f.copy();
    f(0, 0) = 9.0f;
    CHECK(c(0, 0) == 1.0f);
    CHECK(c(1, 2) == 6.0f);
    CHECK(c.shape()[1] == 3);
}

// AddressSanitizer replaces mlock and munlock with calls that lock nothing: VmLck cannot show them.
#if defined(__SANITIZE_ADDRESS__)
#define NDSHM_TEST_SEES_VMLCK 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NDSHM_TEST_SEES_VMLCK 0
#endif
#endif
#if !defined(NDSHM_TEST_SEES_VMLCK) && defined(__linux__)
#define NDSHM_TEST_SEES_VMLCK 1
#elif !defined(NDSHM_TEST_SEES_VMLCK)
#define NDSHM_TEST_SEES_VMLCK 0
#endif

#if NDSHM_TEST_SEES_VMLCK
// The kB of this process's locked memory (VmLck in /proc/self/status).
long locked_kib()
{
    std::ifstream in("/proc/self/status");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("VmLck:", 0) == 0) {
            return std::stol(line.substr(6));
        }
    }
    return -1;
}
#endif

// What the recording hooks of the test below saw: the range of the last call of each kind.
struct pin_calls {
    const void* lock_at = nullptr;
    std::size_t lock_bytes = 0;
    const void* unlock_at = nullptr;
    std::size_t unlock_bytes = 0;
    void* sync_at = nullptr;
    std::size_t sync_bytes = 0;
    int sync_flags = 0;
    ndshm::detail::sys_table real; // the calls the hooks forward to
};

pin_calls& seen_pin_calls()
{
    static pin_calls c;
    return c;
}

TEST_CASE("pin, unpin and flush lock, unlock and write back the array's pages", "[shared_ndarray]")
{
    auto& table = ndshm::detail::sys();
    const test_util::sys_patch guard;
    // Record each call, then make the real one.
    seen_pin_calls() = {};
    seen_pin_calls().real = table;
    table.mlock = [](const void* p, std::size_t n) {
        seen_pin_calls().lock_at = p;
        seen_pin_calls().lock_bytes = n;
        return seen_pin_calls().real.mlock(p, n);
    };
    table.munlock = [](const void* p, std::size_t n) {
        seen_pin_calls().unlock_at = p;
        seen_pin_calls().unlock_bytes = n;
        return seen_pin_calls().real.munlock(p, n);
    };
    table.msync = [](void* p, std::size_t n, int flags) {
        seen_pin_calls().sync_at = p;
        seen_pin_calls().sync_bytes = n;
        seen_pin_calls().sync_flags = flags;
        return seen_pin_calls().real.msync(p, n, flags);
    };
    auto a = shared_ndarray<double>::create({1 << 18}); // 2 MiB
#if NDSHM_TEST_SEES_VMLCK
    const long before = locked_kib();
#endif
    a.pin();
    CHECK(seen_pin_calls().lock_at == a.data());
    CHECK(seen_pin_calls().lock_bytes == a.size() * sizeof(double));
#if NDSHM_TEST_SEES_VMLCK
    CHECK(locked_kib() >= before + 2048); // every page of the array is locked in RAM
#endif
    a(3) = 1.0;
    a.unpin();
    CHECK(seen_pin_calls().unlock_at == a.data());
    CHECK(seen_pin_calls().unlock_bytes == a.size() * sizeof(double));
#if NDSHM_TEST_SEES_VMLCK
    CHECK(locked_kib() == before);
#endif
    a.flush();
    CHECK(seen_pin_calls().sync_at == a.data()); // the data starts on a page
    CHECK(seen_pin_calls().sync_bytes == a.size() * sizeof(double));
    CHECK(seen_pin_calls().sync_flags == MS_SYNC);
    CHECK(a(3) == 1.0);

    seen_pin_calls().lock_at = seen_pin_calls().unlock_at = seen_pin_calls().sync_at = nullptr;
    shared_ndarray<double>().pin(); // an empty handle has nothing to pin, unpin or flush
    shared_ndarray<double>().unpin();
    shared_ndarray<double>().flush();
    CHECK(seen_pin_calls().lock_at == nullptr);
    CHECK(seen_pin_calls().unlock_at == nullptr);
    CHECK(seen_pin_calls().sync_at == nullptr);
}

TEST_CASE("a failed mlock or msync is an exception that names the limit and the fix", "[shared_ndarray][fault]")
{
    auto& table = ndshm::detail::sys();
    const test_util::sys_patch guard;
    auto a = shared_ndarray<double>::create({1024});
    table.mlock = [](const void*, std::size_t) {
        errno = ENOMEM;
        return -1;
    };
    try {
        a.pin();
        FAIL("pin did not throw");
    } catch (const ndshm::out_of_space& e) {
        CHECK_THAT(std::string(e.what()),
                   Catch::Contains("RLIMIT_MEMLOCK") && Catch::Contains("ulimit -l") && Catch::Contains("8.0 KiB"));
    }
    table.mlock = [](const void*, std::size_t) {
        errno = EPERM;
        return -1;
    };
    CHECK_THROWS_AS(a.pin(), ndshm::permission_denied);
    CHECK_THROWS_WITH(a.pin(), Catch::Contains("RLIMIT_MEMLOCK") && Catch::Contains("CAP_IPC_LOCK"));
    table.msync = [](void*, std::size_t, int) {
        errno = EIO;
        return -1;
    };
    CHECK_THROWS_WITH(a.flush(), Catch::Contains("msync") && Catch::Contains(a.name()));
    // ENOMEM from msync or munlock is not about the limit of locked memory: the message names the call.
    table.msync = [](void*, std::size_t, int) {
        errno = ENOMEM;
        return -1;
    };
    try {
        a.flush();
        FAIL("flush did not throw");
    } catch (const ndshm::error& e) {
        CHECK_THAT(std::string(e.what()), Catch::Contains("msync") && !Catch::Contains("RLIMIT_MEMLOCK"));
    }
    table.munlock = [](const void*, std::size_t) {
        errno = ENOMEM;
        return -1;
    };
    CHECK_THROWS_WITH(a.unpin(), Catch::Contains("munlock") && !Catch::Contains("RLIMIT_MEMLOCK"));
}
