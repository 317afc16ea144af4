// Every bad input of the core gets the right ndshm:: exception, and leaves no segment and no fd.
#include <ndshm/all.hpp>

#include "test_util.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/statvfs.h>

#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

using ndshm::shared_ndarray;

namespace {

int counter = 0;

std::string test_name() { return "ndshm_test_bad_" + std::to_string(::getpid()) + "_" + std::to_string(++counter); }

/// A raw segment holding exactly `bytes`, removed at scope end.
struct raw_segment {
    std::string name = test_name();
    explicit raw_segment(const std::vector<unsigned char>& bytes)
    {
        const int fd = ::shm_open(("/" + name).c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
        REQUIRE(fd >= 0);
        REQUIRE(::write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()));
        ::close(fd);
    }
    ~raw_segment() { ::shm_unlink(("/" + name).c_str()); }
};

/// The bytes of a valid ndshm segment holding a float64 array of `n` elements.
std::vector<unsigned char> valid_bytes(std::size_t n)
{
    auto a = shared_ndarray<double>::create({n});
    std::ifstream f("/dev/shm/" + a.name(), std::ios::binary);
    return std::vector<unsigned char>(std::istreambuf_iterator<char>(f), {});
}

/// Replaces the header dict of a segment's bytes, keeping the data at byte 4096.
void set_dict(std::vector<unsigned char>& b, const std::string& dict)
{
    REQUIRE(dict.size() < 4000);
    std::fill(b.begin() + 10, b.begin() + 4095, ' ');
    std::copy(dict.begin(), dict.end(), b.begin() + 10);
}

/// Attaching `name` throws E whose message contains `text`; no fd or segment is leaked.
template <class E>
void check_attach_throws(const std::string& name, const std::string& text, const ndshm::options& o = {})
{
    // Counting this process's fds is exact; /dev/shm is shared with tests running in parallel, and
    // attach creates nothing there, so the leak check is the suite's final one.
    const int fds = test_util::open_fds();
    CHECK_THROWS_AS(shared_ndarray<double>::attach(name, o), E);
    CHECK_THROWS_WITH(shared_ndarray<double>::attach(name, o), Catch::Contains(text) && Catch::Contains(name));
    CHECK_THROWS_AS(ndshm::attach_any(name, o), E);
    CHECK(test_util::open_fds() == fds);
}

// The code of the exception that attaching `name` throws (an empty code if it throws none).
std::error_code attach_error_code(const std::string& name, const ndshm::options& o = {})
{
    try {
        (void)shared_ndarray<double>::attach(name, o);
    } catch (const ndshm::error& e) {
        return e.code();
    }
    return {};
}

ndshm::options no_wait()
{
    ndshm::options o;
    o.ready_timeout = std::chrono::milliseconds(0);
    return o;
}

} // namespace

TEST_CASE("a missing name is not_found", "[bad-input]")
{
    check_attach_throws<ndshm::not_found>("ndshm_test_no_such_segment", "No such file");
    CHECK_THROWS_AS(ndshm::unlink("ndshm_test_no_such_segment"), ndshm::not_found);
}

TEST_CASE("a name that exists on create is already_exists, and the old segment is untouched", "[bad-input][security]")
{
    raw_segment pre(std::vector<unsigned char>(64, 'x'));
    ndshm::options o;
    o.name = pre.name;
    const int fds = test_util::open_fds();
    CHECK_THROWS_AS(shared_ndarray<double>::create({4}, o), ndshm::already_exists);
    CHECK(test_util::open_fds() == fds);
    std::ifstream f("/dev/shm/" + pre.name, std::ios::binary);
    const std::vector<unsigned char> still(std::istreambuf_iterator<char>(f), {});
    CHECK(still == std::vector<unsigned char>(64, 'x'));
}

TEST_CASE("random bytes are format_error", "[bad-input]")
{
    std::mt19937 rng(1234);
    for (std::size_t size : {std::size_t{1}, std::size_t{7}, std::size_t{10}, std::size_t{100}, std::size_t{5000}}) {
        std::vector<unsigned char> bytes(size);
        for (auto& b : bytes) {
            b = static_cast<unsigned char>(rng() | 1u); // never all zero: that would be "unfinished"
        }
        raw_segment seg(bytes);
        check_attach_throws<ndshm::format_error>(seg.name, "magic", no_wait());
    }
}

TEST_CASE("a truncated segment whose header promises more data than it holds is format_error", "[bad-input]")
{
    auto b = valid_bytes(1000);
    b.resize(4096 + 8000 - 8);
    raw_segment seg(b);
    check_attach_throws<ndshm::format_error>(seg.name, "truncated");
    auto h = valid_bytes(4);
    h.resize(100); // cut inside the header
    raw_segment seg2(h);
    check_attach_throws<ndshm::format_error>(seg2.name, "truncated");
}

TEST_CASE("an unfinished segment is format_error after the wait", "[bad-input]")
{
    auto b = valid_bytes(4);
    std::fill(b.begin(), b.begin() + 6, 0); // the magic is written last: without it, not published
    raw_segment seg(b);
    check_attach_throws<ndshm::format_error>(seg.name, "unfinished", no_wait());
    ndshm::options brief;
    brief.ready_timeout = std::chrono::milliseconds(30);
    check_attach_throws<ndshm::format_error>(seg.name, "unfinished", brief);
    raw_segment empty(std::vector<unsigned char>{});
    check_attach_throws<ndshm::format_error>(empty.name, "unfinished", no_wait());
    // ndshm's own code, which still compares equal to the errno condition it stands for.
    const std::error_code code = attach_error_code(seg.name, no_wait());
    CHECK(code == ndshm::errc::unfinished);
    CHECK(code == std::errc::resource_unavailable_try_again);
    CHECK(code.category().name() == std::string("ndshm"));
    CHECK(code.message() == "unfinished segment (not published by its creator)");
}

TEST_CASE("an unfinished segment attaches once its creator publishes it", "[bad-input][multiprocess]")
{
    auto b = valid_bytes(4);
    std::fill(b.begin(), b.begin() + 6, 0);
    raw_segment seg(b);
    test_util::event go;
    const pid_t pid = test_util::fork_child([&] {
        go.wait();
        const int fd = ::shm_open(("/" + seg.name).c_str(), O_RDWR, 0);
        void* p = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        auto* c = static_cast<unsigned char*>(p);
        std::copy_n("\x93NUMPY", 6, c);
        return 0;
    });
    go.set();
    ndshm::options patient;
    patient.ready_timeout = std::chrono::seconds(60);
    auto a = shared_ndarray<double>::attach(seg.name, patient); // waits for the child's publication
    CHECK(a.size() == 4);
    CHECK(test_util::wait_child(pid).ok());
}

TEST_CASE("negative, huge or overflowing shapes are format_error", "[bad-input]")
{
    auto b = valid_bytes(4);
    set_dict(b, "{'descr': '<f8', 'fortran_order': False, 'shape': (-4,), }");
    raw_segment neg(b);
    check_attach_throws<ndshm::format_error>(neg.name, "negative");
    set_dict(b, "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000000,), }");
    raw_segment huge(b);
    check_attach_throws<ndshm::format_error>(huge.name, "truncated");
    set_dict(b, "{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296, 2), }");
    raw_segment over(b);
    check_attach_throws<ndshm::format_error>(over.name, "overflows");
}

TEST_CASE("unsupported and big-endian descrs are format_error", "[bad-input]")
{
    auto b = valid_bytes(4);
    set_dict(b, "{'descr': '>f8', 'fortran_order': False, 'shape': (4,), }");
    raw_segment big(b);
    check_attach_throws<ndshm::format_error>(big.name, "big-endian");
    set_dict(b, "{'descr': '<M8[s]', 'fortran_order': False, 'shape': (4,), }");
    raw_segment dt(b);
    check_attach_throws<ndshm::format_error>(dt.name, "unsupported dtype");
    set_dict(b, "{'descr': [('x', '<f8')], 'fortran_order': False, 'shape': (4,), }");
    raw_segment rec(b);
    check_attach_throws<ndshm::format_error>(rec.name, "structured");
}

TEST_CASE("a trailer that disagrees with the header is format_error", "[bad-input]")
{
    auto b = valid_bytes(4);
    // The trailer follows the data at the next multiple of 64; its data_bytes field is at offset 56.
    const std::size_t t = ndshm::detail::trailer_offset(4096 + 32);
    CHECK(t == 4160);
    b[t + 56] ^= 0xFF;
    raw_segment seg(b);
    check_attach_throws<ndshm::format_error>(seg.name, "trailer");
    CHECK(attach_error_code(seg.name) == ndshm::errc::corrupt_trailer);
    CHECK(attach_error_code(seg.name).message() == "corrupt ndshm trailer");
    auto v = valid_bytes(4);
    v[t + 8] = 7; // a future trailer version
    raw_segment fut(v);
    check_attach_throws<ndshm::format_error>(fut.name, "version");
    CHECK(attach_error_code(fut.name) == ndshm::errc::unsupported_format);
    CHECK(attach_error_code(fut.name) == std::errc::not_supported);
}

TEST_CASE("the wrong T is dtype_mismatch naming both dtypes", "[bad-input]")
{
    auto a = shared_ndarray<float>::create({4});
    CHECK_THROWS_AS(shared_ndarray<double>::attach(a.name()), ndshm::dtype_mismatch);
    CHECK_THROWS_WITH(shared_ndarray<std::int32_t>::attach(a.name()),
                      Catch::Contains("float32") && Catch::Contains("int32") && Catch::Contains(a.name()));
}

TEST_CASE("a request larger than /dev/shm is out_of_space, leaving nothing behind", "[bad-input]")
{
    struct statvfs st {};
    REQUIRE(::statvfs("/dev/shm", &st) == 0);
    const std::size_t free_bytes = st.f_bavail * st.f_frsize;
    const int fds = test_util::open_fds();
    ndshm::options o;
    o.name = test_name();
    try {
        (void)shared_ndarray<double>::create({free_bytes / 8 * 2 + 1024}, o);
        FAIL("create did not throw");
    } catch (const ndshm::out_of_space& e) {
        const std::string msg = e.what();
        CHECK_THAT(msg, Catch::Contains("bytes) free") && Catch::Contains("--shm-size") && Catch::Contains(o.name));
        // Human units beside the byte counts: "needs 16.0 GiB (17179877376 bytes) but /dev/shm has 8.0 GiB (...)".
        CHECK_THAT(msg, Catch::Contains(ndshm::detail::human_bytes(free_bytes / 8 * 2 * 8 + 1024 * 8)) ||
                            Catch::Contains("GiB") || Catch::Contains("MiB"));
        CHECK(e.code() == std::errc::no_space_on_device);
    }
    CHECK_FALSE(test_util::shm_exists(o.name));
    CHECK(test_util::open_fds() == fds);
    // A shape whose byte count overflows is refused before any system call.
    CHECK_THROWS_AS(shared_ndarray<double>::create({std::size_t(1) << 62, 8}), ndshm::out_of_space);
}

TEST_CASE("a full file system during reservation is out_of_space, never SIGBUS", "[bad-input]")
{
    // The space check passed but another process took the space before posix_fallocate: simulated
    // through the system-call hook.
    auto& table = ndshm::detail::sys();
    const auto saved = table;
    table.posix_fallocate = [](int, off_t, off_t) { return ENOSPC; };
    const int fds = test_util::open_fds();
    ndshm::options o;
    o.name = test_name();
    CHECK_THROWS_AS(shared_ndarray<double>::create({1024}, o), ndshm::out_of_space);
    table = saved;
    CHECK_FALSE(test_util::shm_exists(o.name));
    CHECK(test_util::open_fds() == fds);
    table.mmap = [](void*, std::size_t, int, int, int, off_t) -> void* {
        errno = ENOMEM;
        return MAP_FAILED;
    };
    CHECK_THROWS_AS(shared_ndarray<double>::create({1024}, o), ndshm::out_of_space);
    table = saved;
    CHECK_FALSE(test_util::shm_exists(o.name));
    CHECK(test_util::open_fds() == fds);
}
