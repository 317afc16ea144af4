#include <ndshm/segment.hpp>
#include <ndshm/shared_ndarray.hpp>

#include "test_util.hpp"

#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <cstdlib>
#include <set>
#include <vector>
#include <string>

using ndshm::shared_ndarray;

namespace {

/// A fresh directory for the directory backend, removed (with its files) at scope end.
struct temp_dir {
    std::string path;
    temp_dir()
    {
        char tmpl[] = "/tmp/ndshm_dir_XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        path = tmpl;
    }
    ~temp_dir()
    {
        const std::string cmd = "rm -rf '" + path + "'";
        (void)std::system(cmd.c_str());
    }
};

} // namespace

TEST_CASE("generated names are prefixed, short, per-user and unguessable", "[segment][security]")
{
    std::set<std::string> names;
    const std::string prefix = ndshm::detail::user_prefix(::geteuid());
    for (int i = 0; i < 1000; ++i) {
        const std::string n = ndshm::detail::generate_name();
        CHECK(n.rfind(prefix, 0) == 0);
        CHECK(n.size() == prefix.size() + 16);
        CHECK(n.size() <= 30);
        names.insert(n);
    }
    CHECK(names.size() == 1000);
    CHECK(ndshm::detail::user_prefix(4294967295u).size() + 16 <= 30);
    CHECK(ndshm::detail::name_random_bits == 80);
}

TEST_CASE("invalid names are refused before any system call", "[segment][bad-input]")
{
    for (const std::string& bad :
         std::vector<std::string>{"", "a/b", "../etc", ".hidden", std::string(256, 'x'), std::string("sp ace")}) {
        ndshm::options o;
        o.name = bad;
        if (bad.empty()) {
            CHECK_THROWS_AS(shared_ndarray<double>::attach(bad), ndshm::error);
        } else {
            CHECK_THROWS_WITH(shared_ndarray<double>::create({1}, o), Catch::Contains("invalid segment name"));
            CHECK_THROWS_AS(shared_ndarray<double>::attach(bad), ndshm::error);
        }
    }
}

TEST_CASE("free_session unlinks what this process created, and only that", "[segment][lifetime]")
{
    auto a = shared_ndarray<double>::create({4});
    auto b = shared_ndarray<float>::create({4});
    auto p = shared_ndarray<float>::create({4});
    p.persist();
    const std::string persisted = p.name();
    const auto n = ndshm::free_session();
    CHECK(n >= 2);
    CHECK_FALSE(test_util::shm_exists(a.name()));
    CHECK_FALSE(test_util::shm_exists(b.name()));
    CHECK(test_util::shm_exists(persisted));
    a(1) = 1.0; // mappings stay valid
    CHECK(a(1) == 1.0);
    ndshm::unlink(persisted);
}

TEST_CASE("free_all removes this user's ndshm segments and nothing else", "[segment][lifetime]")
{
    // free_all sweeps all of /dev/shm for the calling user. Run it as `nobody` in a child so that it
    // cannot touch segments of tests running in parallel, and check that root's segments survive.
    temp_dir dir;
    REQUIRE(::chmod(dir.path.c_str(), 0777) == 0);
    auto mine = shared_ndarray<double>::create({4});
    const std::string root_file = dir.path + "/ndshm_of_root";
    const std::string unrelated = dir.path + "/unrelated";
    REQUIRE(std::system(("touch '" + root_file + "'").c_str()) == 0);
    const auto st = test_util::run_child([&] {
        if (!test_util::become_nobody()) {
            return 10;
        }
        ndshm::options o;
        o.directory = dir.path;
        auto a = shared_ndarray<double>::create({4}, o);
        a.persist();
        auto b = shared_ndarray<double>::create({4});
        b.persist();
        if (std::system(("touch '" + unrelated + "'").c_str()) != 0) {
            return 11;
        }
        if (ndshm::free_all(o) < 2) {
            return 12;
        }
        if (test_util::shm_exists(b.name()) || ::access((dir.path + "/" + a.name()).c_str(), F_OK) == 0) {
            return 13;
        }
        return ::access(unrelated.c_str(), F_OK) == 0 ? 0 : 14;
    });
    CHECK(st.exited);
    CHECK(st.code == 0);
    CHECK(test_util::shm_exists(mine.name()));
    CHECK(::access(root_file.c_str(), F_OK) == 0);
}

TEST_CASE("the directory backend keeps segments as files in a directory", "[segment]")
{
    temp_dir dir;
    ndshm::options o;
    o.directory = dir.path;
    std::string name;
    {
        auto a = shared_ndarray<std::int32_t>::create({3, 3}, o);
        name = a.name();
        a(2, 2) = 9;
        CHECK(::access((dir.path + "/" + name).c_str(), F_OK) == 0);
        CHECK_FALSE(test_util::shm_exists(name));
        auto b = shared_ndarray<std::int32_t>::attach(name, o);
        CHECK(b(2, 2) == 9);
        CHECK_THROWS_AS(shared_ndarray<std::int32_t>::attach(name), ndshm::not_found); // not in POSIX shm
    }
    CHECK(::access((dir.path + "/" + name).c_str(), F_OK) != 0);
    // NDSHM_DIR selects the same backend for calls without options.
    ::setenv("NDSHM_DIR", dir.path.c_str(), 1);
    auto c = shared_ndarray<double>::create({2});
    ::unsetenv("NDSHM_DIR");
    CHECK(::access((dir.path + "/" + c.name()).c_str(), F_OK) == 0);
    CHECK_THROWS_AS(shared_ndarray<double>::attach(c.name()), ndshm::not_found);
    CHECK(shared_ndarray<double>::attach(c.name(), o).size() == 2);
    ndshm::unlink(c.name(), o);
}
