// Security checks beyond those of multiprocess_test.cpp and bad_input_test.cpp: exact modes under any
// umask in both backends, names that another user planted first (a file, a symbolic link, a FIFO), and
// the randomness of generated names.
#include <ndshm/all.hpp>

#include "test_util.hpp"
#include "tools_util.hpp"

#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <set>
#include <string>
#include <vector>

using ndshm::shared_ndarray;
using tools_util::temp_dir;

namespace {

std::uint32_t mode_of(const std::string& path)
{
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    return static_cast<std::uint32_t>(st.st_mode & 07777);
}

} // namespace

TEST_CASE("created segments have exactly the requested mode whatever the umask, in both backends", "[security]")
{
    temp_dir d;
    for (const mode_t mask : {mode_t(0), mode_t(022), mode_t(0777)}) {
        INFO("umask " << mask);
        const mode_t old = ::umask(mask);
        auto a = shared_ndarray<double>::create({2});
        auto b = shared_ndarray<double>::create({2}, d.opts());
        ndshm::options wide = d.opts();
        wide.mode = 0644;
        auto c = shared_ndarray<double>::create({2}, wide);
        ::umask(old);
        CHECK(mode_of("/dev/shm/" + a.name()) == 0600);
        CHECK(mode_of(d / b.name()) == 0600);
        CHECK(mode_of(d / c.name()) == 0644);
        CHECK(ndshm::inspect(a.name()).mode == 0600);
    }
    ndshm::options bad;
    bad.mode = 04600; // set-uid and the like are not permission bits
    CHECK_THROWS_AS(shared_ndarray<double>::create({2}, bad), ndshm::error);
}

TEST_CASE("a name another user created first makes create fail, and its bytes stay as they are", "[security]")
{
    const std::string name = tools_util::test_name("planted");
    tools_util::shm_guard guard(name);
    const std::vector<unsigned char> planted(8192, 'x');
    // nobody plants a world-writable file under the name, hoping that root writes into it.
    const auto st = test_util::run_child([&] {
        if (!test_util::become_nobody()) {
            return 10;
        }
        tools_util::write_file("/dev/shm/" + name, planted, 0666);
        return 0;
    });
    REQUIRE(st.ok());
    ndshm::options o;
    o.name = name;
    const int fds = test_util::open_fds();
    CHECK_THROWS_AS(shared_ndarray<double>::create({16}, o), ndshm::already_exists);
    CHECK_THROWS_WITH(shared_ndarray<double>::create({16}, o), Catch::Contains(name));
    CHECK(test_util::open_fds() == fds);
    CHECK(tools_util::read_file("/dev/shm/" + name) == planted);
    CHECK(mode_of("/dev/shm/" + name) == 0666); // not even its mode changed
    // attach refuses it too: it belongs to someone else (and is not a .npy either).
    CHECK_THROWS_AS(shared_ndarray<double>::attach(name), ndshm::permission_denied);
    CHECK(tools_util::read_file("/dev/shm/" + name) == planted);
}

TEST_CASE("a symbolic link or a FIFO planted in a shared directory is refused without following or blocking",
          "[security]")
{
    temp_dir d;
    REQUIRE(::chmod(d.path.c_str(), 01777) == 0); // a scratch directory every user may write, like /tmp
    const std::string target = d / "root_file";
    const std::vector<unsigned char> precious(100, 'p');
    tools_util::write_file(target, precious);
    const auto st = test_util::run_child([&] {
        if (!test_util::become_nobody()) {
            return 10;
        }
        if (::symlink(target.c_str(), (d / "ndshm_link").c_str()) != 0) {
            return 11;
        }
        return ::mkfifo((d / "ndshm_fifo").c_str(), 0666) == 0 ? 0 : 12;
    });
    REQUIRE(st.ok());
    ndshm::options o = d.opts();
    for (const char* name : {"ndshm_link", "ndshm_fifo"}) {
        INFO(name);
        o.name = name;
        CHECK_THROWS_AS(shared_ndarray<double>::create({16}, o), ndshm::already_exists);
        CHECK_THROWS_AS(shared_ndarray<double>::attach(name, d.opts()), ndshm::error);
        CHECK_THROWS_AS(shared_ndarray<const double>::attach(name, d.opts()), ndshm::error); // O_RDONLY on a FIFO
    }
    CHECK(tools_util::read_file(target) == precious);
    CHECK(ndshm::list_segments(d.opts()).empty()); // neither is a segment of this user
}

TEST_CASE("generated names draw every one of their 16 characters from all 32 symbols", "[security]")
{
    // 80 random bits: 16 characters of base 32. With 4000 names each symbol is expected 125 times at
    // each position; one missing would mean bits that are not random.
    const std::string prefix = ndshm::detail::user_prefix(::geteuid());
    std::vector<std::set<char>> seen(16);
    std::set<std::string> tokens;
    for (int i = 0; i < 4000; ++i) {
        const std::string n = ndshm::detail::generate_name();
        REQUIRE(n.size() == prefix.size() + 16);
        const std::string token = n.substr(prefix.size());
        tokens.insert(token);
        for (std::size_t k = 0; k < 16; ++k) {
            seen[k].insert(token[k]);
        }
    }
    CHECK(tokens.size() == 4000);
    for (std::size_t k = 0; k < 16; ++k) {
        INFO("position " << k);
        CHECK(seen[k].size() == 32);
    }
    CHECK(ndshm::detail::name_random_bits == 80);
}
