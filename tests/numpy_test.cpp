// NumPy interop: NumPy maps segments C++ made and C++ attaches segments NumPy made, each side checking
// dtype, shape, order and values and seeing the other's writes in place. NumPy's side is
// tests/python/numpy_rw.py, run with NDSHM_TEST_PYTHON (a python3 that has NumPy).
#include <ndshm/all.hpp>

#include "test_util.hpp"

#include <catch2/catch.hpp>

#include <sys/mman.h>
#include <unistd.h>

#include <complex>
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

using ndshm::shared_ndarray;

namespace {

/// The value at C-order flat index k after the other side's write.
template <class T>
T written_value(std::size_t k)
{
    const T v = test_util::pattern_value<T>(k);
    if constexpr (std::is_same_v<T, bool>) {
        return !v;
    } else {
        return static_cast<T>(v * T(2) + T(1));
    }
}

enum class values { initial, written };

template <class T>
T value(values which, std::size_t k)
{
    return which == values::initial ? test_util::pattern_value<T>(k) : written_value<T>(k);
}

/// Calls f(k, index) for every index of `shape` in C order, k being the C-order flat index.
template <class F>
void for_each_index(const ndshm::shape_type& shape, F f)
{
    std::size_t n = 1;
    for (const std::size_t d : shape) {
        n *= d;
    }
    std::vector<std::size_t> index(shape.size(), 0);
    for (std::size_t k = 0; k < n; ++k) {
        f(k, index);
        for (std::size_t d = shape.size(); d-- > 0;) {
            if (++index[d] < shape[d]) {
                break;
            }
            index[d] = 0;
        }
    }
}

/// a(i, j, ...) for an index of 0 to 3 dimensions; works for handles and for their view().
template <class A>
decltype(auto) element(A& a, const std::vector<std::size_t>& i)
{
    switch (i.size()) {
    case 0:
        return a();
    case 1:
        return a(i[0]);
    case 2:
        return a(i[0], i[1]);
    default:
        return a(i[0], i[1], i[2]);
    }
}

/// The expected contents as a row-major xarray, to compare whole views with.
template <class T>
xt::xarray<T> expected(const ndshm::shape_type& shape, values which)
{
    auto x = xt::xarray<T>::from_shape(shape);
    for_each_index(shape, [&](std::size_t k, const std::vector<std::size_t>&) { x.data()[k] = value<T>(which, k); });
    return x;
}

/// Writes the values through element access a(i, j, ...).
template <class T>
void fill(shared_ndarray<T>& a, values which)
{
    for_each_index(a.shape(),
                   [&](std::size_t k, const std::vector<std::size_t>& i) { element(a, i) = value<T>(which, k); });
}

/// Checks the values through element access a(i, j, ...), through view()(i, j, ...) and by comparing
/// the whole view with an xarray.
template <class T>
void check_values(const shared_ndarray<T>& a, values which)
{
    using V = std::remove_const_t<T>;
    const auto v = a.view();
    std::size_t wrong_elements = 0, wrong_view_elements = 0;
    for_each_index(a.shape(), [&](std::size_t k, const std::vector<std::size_t>& i) {
        wrong_elements += element(a, i) == value<V>(which, k) ? 0 : 1;
        wrong_view_elements += element(v, i) == value<V>(which, k) ? 0 : 1;
    });
    CHECK(wrong_elements == 0);
    CHECK(wrong_view_elements == 0);
    CHECK(v == expected<V>(a.shape(), which));
}

std::string shape_arg(const ndshm::shape_type& shape)
{
    std::string s;
    for (const std::size_t d : shape) {
        s += (s.empty() ? "" : ",") + std::to_string(d);
    }
    return s;
}

/// Runs tests/python/numpy_rw.py ACTION /dev/shm/NAME DESCR SHAPE ORDER EXTRA...; true if it passed.
bool numpy_rw(const std::string& action, const std::string& name, ndshm::dtype t, const ndshm::shape_type& shape,
              bool fortran, const std::vector<std::string>& extra = {})
{
    std::vector<std::string> args{NDSHM_TEST_PYTHON,
                                  std::string(NDSHM_TEST_SOURCE_DIR) + "/python/numpy_rw.py",
                                  action,
                                  "/dev/shm/" + name,
                                  ndshm::dtype_descr(t),
                                  shape_arg(shape),
                                  fortran ? "F" : "C"};
    args.insert(args.end(), extra.begin(), extra.end());
    std::string command;
    for (const auto& a : args) {
        command += (command.empty() ? "" : " ") + (a.empty() ? std::string("''") : a);
    }
    INFO("ran " << command);
    const auto st = test_util::spawn_wait(args);
    INFO("exit code " << st.code << ", signal " << st.signal);
    CHECK(st.ok());
    return st.ok();
}

/// A fresh name for a segment NumPy makes, with the prefix the suite's leak check looks for.
std::string numpy_name()
{
    static int counter = 0;
    return "ndshm_test_numpy_" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
}

/// Removes a segment NumPy made however the test ends (ndshm never owns foreign segments).
class shm_guard {
public:
    explicit shm_guard(std::string name) : m_name(std::move(name)) {}
    shm_guard(const shm_guard&) = delete;
    shm_guard& operator=(const shm_guard&) = delete;
    ~shm_guard() { (void)::shm_unlink(("/" + m_name).c_str()); }

private:
    std::string m_name;
};

/// `a` after filling it with the initial values.
template <class T>
shared_ndarray<T> filled(shared_ndarray<T> a)
{
    fill(a, values::initial);
    return a;
}

/// C++ has created and filled `a`; NumPy maps the segment in place, checks it and writes; C++ sees the
/// writes.
template <class T>
void cpp_to_numpy(const shared_ndarray<T>& a)
{
    const ndshm::shape_type shape = a.shape();
    check_values(a, values::initial);
    REQUIRE(test_util::shm_exists(a.name()));

    REQUIRE(numpy_rw("update", a.name(), ndshm::dtype_of<T>, shape, a.fortran_order(), {"--data-offset", "4096"}));

    check_values(a, values::written); // the same mapping NumPy wrote through
    const auto b = shared_ndarray<T>::attach(a.name());
    CHECK(b.shape() == shape);
    CHECK(b.fortran_order() == a.fortran_order());
    check_values(b, values::written);
}

/// NumPy creates with open_memmap and fills; C++ attaches typed and dtype-erased, checks, writes;
/// NumPy sees the writes; C++ unlinks.
template <class T>
void numpy_to_cpp(const ndshm::shape_type& shape, bool fortran)
{
    const std::string name = numpy_name();
    const shm_guard guard(name);
    REQUIRE(numpy_rw("create", name, ndshm::dtype_of<T>, shape, fortran));
    {
        auto a = shared_ndarray<T>::attach(name);
        CHECK(a.name() == name);
        CHECK(a.shape() == shape);
        CHECK(a.dtype() == ndshm::dtype_of<T>);
        CHECK(a.fortran_order() == fortran);
        check_values(a, values::initial);

        const auto any = ndshm::attach_any(name);
        CHECK(any.name() == name);
        CHECK(any.dtype() == ndshm::dtype_of<T>);
        CHECK(any.shape() == shape);
        CHECK(any.size() == a.size());
        CHECK(any.nbytes() == a.size() * sizeof(T));
        CHECK(any.fortran_order() == fortran);
        CHECK_FALSE(any.has_trailer()); // foreign: NumPy wrote no ndshm trailer
        CHECK_FALSE(any.read_only());
        check_values(any.as<T>(), values::initial);
        check_values(any.as<const T>(), values::initial);

        using other = std::conditional_t<std::is_same_v<T, double>, float, double>;
        CHECK_THROWS_AS(shared_ndarray<other>::attach(name), ndshm::dtype_mismatch);
        CHECK_THROWS_AS(any.as<other>(), ndshm::dtype_mismatch);

        fill(a, values::written);
    }
    // Attach never owns: dropping every handle leaves NumPy's segment in place.
    REQUIRE(test_util::shm_exists(name));
    CHECK(numpy_rw("check", name, ndshm::dtype_of<T>, shape, fortran, {"--values", "written"}));
    ndshm::unlink(name);
    CHECK_FALSE(test_util::shm_exists(name));
}

} // namespace

TEMPLATE_TEST_CASE("numpy interop: NumPy maps a segment C++ created and C++ sees its writes", "[numpy]", bool,
                   std::int8_t, std::int16_t, std::int32_t, std::int64_t, std::uint8_t, std::uint16_t, std::uint32_t,
                   std::uint64_t, float, double, std::complex<float>, std::complex<double>)
{
    using T = TestType;
    SECTION("2-d, C order") { cpp_to_numpy(filled(shared_ndarray<T>::create({4, 5}))); }
    SECTION("2-d, Fortran order") { cpp_to_numpy(filled(shared_ndarray<T>::create({4, 5}, ndshm::order::fortran))); }
    SECTION("3-d, C order") { cpp_to_numpy(filled(shared_ndarray<T>::create({2, 3, 4}, ndshm::order::c))); }
    SECTION("3-d, Fortran order") { cpp_to_numpy(filled(shared_ndarray<T>::create({2, 3, 4}, ndshm::order::fortran))); }
}

TEST_CASE("numpy interop: NumPy maps C++ segments of unusual shapes and from_array segments", "[numpy]")
{
    SECTION("0-d") { cpp_to_numpy(filled(shared_ndarray<double>::create({}))); }
    SECTION("1-d") { cpp_to_numpy(filled(shared_ndarray<std::int32_t>::create({7}))); }
    SECTION("empty, C order") { cpp_to_numpy(filled(shared_ndarray<double>::create({0, 3}))); }
    SECTION("empty, Fortran order")
    {
        cpp_to_numpy(filled(shared_ndarray<double>::create({3, 0}, ndshm::order::fortran)));
    }
    SECTION("larger than a page, Fortran order")
    {
        cpp_to_numpy(filled(shared_ndarray<double>::create({1000, 3}, ndshm::order::fortran)));
    }
    SECTION("from_array of an xtensor expression")
    {
        // the initial values of a float64 array: k / 2 - 3
        cpp_to_numpy(shared_ndarray<double>::from_array(xt::arange<double>(10.0) / 2.0 - 3.0));
    }
    SECTION("from_array of a pointer and a shape")
    {
        const auto x = expected<std::int16_t>({5, 6}, values::initial);
        cpp_to_numpy(shared_ndarray<std::int16_t>::from_array(x.data(), {5, 6}));
    }
}

TEMPLATE_TEST_CASE("numpy interop: C++ attaches a segment NumPy made with open_memmap", "[numpy]", bool, std::int8_t,
                   std::int16_t, std::int32_t, std::int64_t, std::uint8_t, std::uint16_t, std::uint32_t, std::uint64_t,
                   float, double, std::complex<float>, std::complex<double>)
{
    using T = TestType;
    SECTION("2-d, C order") { numpy_to_cpp<T>({4, 5}, false); }
    SECTION("2-d, Fortran order") { numpy_to_cpp<T>({4, 5}, true); }
    SECTION("3-d, C order") { numpy_to_cpp<T>({2, 3, 4}, false); }
    SECTION("3-d, Fortran order") { numpy_to_cpp<T>({2, 3, 4}, true); }
}

TEST_CASE("numpy interop: C++ attaches NumPy segments of unusual shapes", "[numpy]")
{
    SECTION("0-d") { numpy_to_cpp<double>({}, false); }
    SECTION("1-d") { numpy_to_cpp<std::int32_t>({7}, false); }
    SECTION("empty, C order") { numpy_to_cpp<double>({0, 3}, false); }
    SECTION("empty, Fortran order") { numpy_to_cpp<float>({3, 0}, true); }
    SECTION("larger than a page, Fortran order") { numpy_to_cpp<double>({1000, 3}, true); }
}

TEST_CASE("numpy interop: C++ attaches a NumPy segment read-only and keeps its mapping after unlink", "[numpy]")
{
    const std::string name = numpy_name();
    const shm_guard guard(name);
    REQUIRE(numpy_rw("create", name, ndshm::dtype::float64, {3, 4}, true));

    const auto ro = shared_ndarray<const double>::attach(name);
    CHECK(ro.fortran_order());
    check_values(ro, values::initial);
    ndshm::options read_only;
    read_only.read_only = true;
    const auto any = ndshm::attach_any(name, read_only);
    CHECK(any.read_only());
    CHECK_FALSE(any.has_trailer());
    CHECK_THROWS_AS(any.as<double>(), ndshm::error);
    check_values(any.as<const double>(), values::initial);

    // Removing the name leaves the mappings valid; new attaches fail.
    ndshm::unlink(name);
    CHECK_FALSE(test_util::shm_exists(name));
    check_values(ro, values::initial);
    CHECK_THROWS_AS(shared_ndarray<double>::attach(name), ndshm::not_found);
}
