// A name that is unlinked and created again belongs to its new creator: no handle, free_session(),
// queue, store or gc of anyone else removes it. Three real processes: A creates X, B unlinks X, C creates
// a new X; then A lets go of its X. Processes synchronise on pipe events only.
#include <ndshm/all.hpp>

#include "sys_counter.hpp"
#include "test_util.hpp"
#include "tools_util.hpp"

#include <catch2/catch.hpp>

#include <cstring>
#include <string>
#include <vector>

using ndshm::shared_ndarray;
using tools_util::temp_dir;

namespace {

/// Where the test's names live: /dev/shm, or a private directory backend.
struct backend {
    bool posix;
    temp_dir dir;
    ndshm::options opt;
    explicit backend(bool in_dev_shm) : posix(in_dev_shm)
    {
        if (!posix) {
            opt = dir.opts();
        }
    }
    ndshm::options named(const std::string& name) const
    {
        ndshm::options o = opt;
        o.name = name;
        return o;
    }
    std::string path(const std::string& name) const
    {
        return (posix ? std::string("/dev/shm") : dir.path) + "/" + name;
    }
};

/// How process A lets go of its segment.
enum class release { last_handle, free_session };

/// B: removes the name, as any process of the user may.
void unlink_in_another_process(const std::string& name, const ndshm::options& opt)
{
    REQUIRE(test_util::run_child([&] {
                ndshm::unlink(name, opt);
                return 0;
            }).ok());
}

/// C: creates a new segment under the name in `opt` holding `value`, signals `made`, and keeps it until
/// `done`.
pid_t create_in_another_process(const ndshm::options& opt, double value, const test_util::event& made,
                                const test_util::event& done)
{
    return test_util::fork_child([&, value] {
        auto c = shared_ndarray<double>::create({4}, opt);
        c(0) = value;
        made.set();
        done.wait();
        return 0;
    });
}

} // namespace

TEST_CASE("a creator never unlinks the segment another process created later under its name",
          "[lifetime][multiprocess]")
{
    for (const bool posix : {true, false}) {
        for (const release how : {release::last_handle, release::free_session}) {
            INFO((posix ? "/dev/shm" : "directory backend")
                 << (how == release::last_handle ? ", last handle" : ", free_session()"));
            backend b(posix);
            const std::string name = tools_util::test_name("reuse");
            tools_util::shm_guard guard(posix ? name : std::string());
            const ndshm::options o = b.named(name);
            test_util::event a_made, a_release, c_made, c_done;
            // A creates X and owns it.
            const pid_t a = test_util::fork_child([&] {
                auto x = shared_ndarray<double>::create({4}, o);
                x(0) = 1.0;
                a_made.set();
                a_release.wait();
                if (how == release::free_session) {
                    return ndshm::free_session() == 0 ? 0 : 1; // nothing of its own is left to remove
                }
                return 0; // x, the last handle, goes here
            });
            REQUIRE(a_made.wait() == 1);
            unlink_in_another_process(name, b.opt);                            // B
            const pid_t c = create_in_another_process(o, 2.0, c_made, c_done); // C
            REQUIRE(c_made.wait() == 1);
            a_release.set();
            CHECK(test_util::wait_child(a).ok());
            // C's segment is still there, and its readers attach it.
            REQUIRE(tools_util::file_exists(b.path(name)));
            CHECK(shared_ndarray<double>::attach(name, b.opt)(0) == 2.0);
            c_done.set();
            CHECK(test_util::wait_child(c).ok());
            CHECK_FALSE(tools_util::file_exists(b.path(name))); // C's own last handle removed it
        }
    }
}

TEST_CASE("a queue never pops or removes a queued name that was created again by someone else",
          "[lifetime][multiprocess][queue]")
{
    backend b(false);
    auto q = ndshm::array_queue::create(4, b.opt);
    const std::string name = tools_util::test_name("queued");
    const ndshm::options o = b.named(name);
    auto x = shared_ndarray<double>::create({4}, o);
    x(0) = 1.0;
    q.push(std::move(x)); // the queue's owner (this process) holds it now
    unlink_in_another_process(name, b.opt);
    test_util::event c_made, c_done;
    const pid_t c = create_in_another_process(o, 2.0, c_made, c_done);
    REQUIRE(c_made.wait() == 1);
    SECTION("a pop refuses the new segment and drops the entry")
    {
        CHECK_THROWS_WITH(q.try_pop<double>(), Catch::Contains("another file has its name now"));
        CHECK(q.size() == 0);
    }
    SECTION("removing the queue leaves the new segment alone") { q.remove(); }
    CHECK(shared_ndarray<double>::attach(name, b.opt)(0) == 2.0);
    c_done.set();
    CHECK(test_util::wait_child(c).ok());
    CHECK_FALSE(tools_util::file_exists(b.path(name)));
}

TEST_CASE("closing a store leaves a segment created again under the name of one it loaded", "[lifetime][store]")
{
    backend b(false);
    temp_dir data;
    ndshm::store s(data.path, b.opt);
    s.put("w", xt::xarray<double>{1.0, 2.0, 3.0});
    const auto got = s.get<double>("w");
    const std::string name = got.name();
    unlink_in_another_process(name, b.opt);
    test_util::event c_made, c_done;
    const pid_t c = create_in_another_process(b.named(name), 9.0, c_made, c_done);
    REQUIRE(c_made.wait() == 1);
    s.close();
    CHECK(shared_ndarray<double>::attach(name, b.opt)(0) == 9.0);
    CHECK(got(2) == 3.0); // the store's handle given out earlier still maps the old segment
    c_done.set();
    CHECK(test_util::wait_child(c).ok());
}

namespace {

namespace sysd = ndshm::detail::sys_default;

std::string g_swap_path; // the file to replace, once, right before gc's last look at it
int swap_then_fstatat(int d, const char* path, struct stat* st, int f)
{
    if (!g_swap_path.empty() && g_swap_path == path) {
        g_swap_path.clear();
        (void)::unlink(path);
        tools_util::write_file(path, tools_util::array_bytes(4)); // a live segment of this process
    }
    return sysd::fstatat(d, path, st, f);
}

} // namespace

TEST_CASE("gc leaves a name that was created again after it judged the old segment garbage", "[lifetime][gc]")
{
    temp_dir d;
    auto bytes = tools_util::array_bytes(4);
    tools_util::patch_trailer(bytes,
                              [](auto& t) { t.creator_pid = static_cast<std::uint64_t>(tools_util::dead_pid()); });
    tools_util::write_file(d / "ndshm_reused", bytes);
    std::vector<ndshm::gc_entry> removed;
    {
        const test_util::sys_patch patch; // the table is put back even if gc throws
        g_swap_path = d / "ndshm_reused";
        ndshm::detail::sys().fstatat = swap_then_fstatat;
        removed = ndshm::gc(d.opts());
    }
    CHECK(g_swap_path.empty()); // the swap happened
    CHECK(removed.empty());
    REQUIRE(tools_util::file_exists(d / "ndshm_reused"));
    CHECK(ndshm::inspect("ndshm_reused", d.opts()).creator == ndshm::creator_status::alive);
}
