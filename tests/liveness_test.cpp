// detail/liveness.hpp: a process counts as dead only on positive evidence. Running short of
// descriptors (RLIMIT_NOFILE, EMFILE on /proc) must never make gc, the channel's slot reclaim or the
// tool take a live process for a dead one; each says what it could not judge instead. Segments live in
// a private directory backend, so gc never sees the segments of tests that run in parallel.
#include <ndshm/all.hpp>

#include "sys_counter.hpp"
#include "test_util.hpp"
#include "tools_util.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

using ndshm::shared_ndarray;
using tools_util::temp_dir;

namespace {

namespace sysd = ndshm::detail::sys_default;

/// Leaves exactly `free_fds` descriptors free in this process: lowers RLIMIT_NOFILE just above the
/// highest open descriptor, fills every free number with /dev/null, then closes `free_fds` of those.
bool leave_free_descriptors(int free_fds)
{
    int highest = 2;
    for (int fd = 0; fd < 1024; ++fd) {
        if (::fcntl(fd, F_GETFD) != -1) {
            highest = fd;
        }
    }
    struct rlimit lim {};
    if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) {
        return false;
    }
    lim.rlim_cur = static_cast<rlim_t>(highest + 1 + free_fds);
    if (::setrlimit(RLIMIT_NOFILE, &lim) != 0) {
        return false;
    }
    std::vector<int> fillers;
    for (;;) {
        const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            break;
        }
        fillers.push_back(fd);
    }
    if (errno != EMFILE || static_cast<int>(fillers.size()) < free_fds) {
        return false;
    }
    for (int i = 0; i < free_fds; ++i) {
        ::close(fillers.back());
        fillers.pop_back();
    }
    return true;
}

bool exists(const temp_dir& d, const std::string& name) { return tools_util::file_exists(d / name); }

// EMFILE for every open of a /proc path, as a process out of descriptors sees it.
int emfile_on_proc(int dir, const char* path, int flags, mode_t mode)
{
    if (std::strncmp(path, "/proc/", 6) == 0) {
        errno = EMFILE;
        return -1;
    }
    return sysd::openat(dir, path, flags, mode);
}
DIR* emfile_on_proc_dir(const char* path)
{
    if (std::strncmp(path, "/proc", 5) == 0) {
        errno = EMFILE;
        return nullptr;
    }
    return sysd::opendir(path);
}
int kill_fails_eagain(pid_t, int)
{
    errno = EAGAIN;
    return -1;
}

using test_util::sys_patch;

std::vector<std::string> names_of(const std::vector<ndshm::gc_entry>& v)
{
    std::vector<std::string> n;
    for (const auto& e : v) {
        n.push_back(e.segment.name);
    }
    return n;
}

} // namespace

TEST_CASE("a process counts as dead only on positive evidence", "[liveness]")
{
    using ndshm::detail::check_process;
    using ndshm::detail::liveness;
    const auto me = static_cast<std::uint64_t>(::getpid());
    const std::uint64_t start = ndshm::detail::process_start_time(me);
    REQUIRE(start != 0);
    const auto gone = static_cast<std::uint64_t>(tools_util::dead_pid());

    CHECK(check_process(me, start).state == liveness::alive);
    CHECK(check_process(me, start + 1).state == liveness::dead); // the pid names another process now
    CHECK(check_process(gone, 12345).state == liveness::dead);   // ESRCH
    CHECK(check_process(0, 0).state == liveness::unknown);
    CHECK(check_process(std::uint64_t(1) << 40, 0).state == liveness::unknown);
    {
        sys_patch p;
        ndshm::detail::sys().openat = emfile_on_proc;
        // /proc cannot be opened: a live process is unknown (never dead), even with another start time
        // recorded; a gone one is still dead, since kill needs no descriptor.
        const auto c = check_process(me, start + 1);
        CHECK(c.state == liveness::unknown);
        CHECK_THAT(c.detail, Catch::Contains("Too many open files"));
        CHECK(check_process(gone, 12345).state == liveness::dead);
    }
    {
        sys_patch p;
        ndshm::detail::sys().kill = kill_fails_eagain;
        CHECK(check_process(gone, 12345).state == liveness::unknown); // no ESRCH: no evidence
    }
}

TEST_CASE("gc never removes a live creator's segment, however few descriptors are free", "[liveness][gc]")
{
    temp_dir d;
    test_util::event made, done;
    // The live creator: another process that keeps running while gc looks at its segment.
    const pid_t creator = test_util::fork_child([&] {
        ndshm::options o = d.opts();
        o.name = "ndshm_live";
        auto a = shared_ndarray<double>::create({16}, o);
        made.set();
        done.wait();
        return 0;
    });
    tools_util::child_guard guard(creator);
    REQUIRE(made.wait() == 1);
    // From one free descriptor up (with none, gc cannot even list the directory, and says so; the
    // sanitizers' own checks need a descriptor to report an exception, so that case is not run here).
    for (int free_fds = 1; free_fds <= 4; ++free_fds) {
        INFO(free_fds << " descriptors free");
        {
            ndshm::options o = d.opts();
            o.name = "ndshm_dead";
            REQUIRE(test_util::run_child([&] {
                        shared_ndarray<double>::create({16}, o).persist();
                        return 0;
                    }).ok());
            // persist() keeps it from its own unlink; clear the flag so that gc sees a dead, unpersisted creator.
            auto bytes = tools_util::read_file(d / "ndshm_dead");
            tools_util::patch_trailer(bytes, [](auto& t) { t.flags &= ~ndshm::detail::flag_persisted; });
            REQUIRE(::unlink((d / "ndshm_dead").c_str()) == 0);
            tools_util::write_file(d / "ndshm_dead", bytes);
        }
        const auto st = test_util::run_child([&] {
            if (!leave_free_descriptors(free_fds)) {
                return 10;
            }
            std::vector<ndshm::gc_entry> undecided;
            try {
                const auto removed = ndshm::gc(d.opts(), false, &undecided);
                for (const auto& e : removed) {
                    if (e.segment.name != "ndshm_dead") {
                        return 11; // removed something else than the dead creator's segment
                    }
                }
                for (const auto& e : undecided) {
                    std::printf("kept %s: %s\n", e.segment.name.c_str(), e.reason.c_str());
                }
                bool live_doubted = false;
                for (const auto& e : undecided) {
                    live_doubted = live_doubted || e.segment.name == "ndshm_live";
                }
                // With too few descriptors to read /proc, gc must say it kept the live one undecided.
                if (free_fds < 2 && !live_doubted) {
                    return 12;
                }
                return free_fds >= 2 && live_doubted ? 13 : 0;
            } catch (const ndshm::error& e) {
                std::printf("gc: %s\n", e.what());
                return 14;
            }
        });
        CHECK(st.exited);
        CHECK(st.code == 0);
        CHECK(exists(d, "ndshm_live"));
        CHECK_FALSE(exists(d, "ndshm_dead")); // positive evidence (ESRCH) needs no descriptor
        (void)::unlink((d / "ndshm_dead").c_str());
    }
    done.set();
    CHECK(guard.wait().ok());
    CHECK_FALSE(exists(d, "ndshm_live")); // its creator's own handle removed it on exit
}

TEST_CASE("gc keeps an unfinished segment without a trailer when /proc cannot be walked", "[liveness][gc]")
{
    temp_dir d;
    // In a PID namespace with a /proc of its own, so that a complete walk is possible at all (see
    // inspect_test); the walk is then broken on purpose.
    const auto st = tools_util::run_with_own_proc([&] {
        // Empty segments, one held open by a live process: a creator before its trailer, or a store's
        // load lock that a loader holds.
        tools_util::write_file(d / "ndshm_orphan", std::vector<unsigned char>(8192, 0));
        tools_util::write_file(d / "ndshm_k0123.lock", {});
        const int fd = ::open((d / "ndshm_k0123.lock").c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            return 1;
        }
        {
            sys_patch p;
            ndshm::detail::sys().opendir = emfile_on_proc_dir;
            std::vector<ndshm::gc_entry> undecided;
            if (!ndshm::gc(d.opts(), false, &undecided).empty()) {
                return 2;
            }
            if (names_of(undecided) != std::vector<std::string>{"ndshm_k0123.lock", "ndshm_orphan"}) {
                return 3;
            }
            for (const auto& e : undecided) {
                if (e.reason.find("could not tell") == std::string::npos ||
                    e.reason.find("Too many open files") == std::string::npos || e.removed) {
                    return 4;
                }
            }
        }
        if (!exists(d, "ndshm_orphan") || !exists(d, "ndshm_k0123.lock")) {
            return 5;
        }
        // With /proc readable, the orphan goes and the held lock file stays.
        if (names_of(ndshm::gc(d.opts())) != std::vector<std::string>{"ndshm_orphan"}) {
            return 6;
        }
        const bool kept = exists(d, "ndshm_k0123.lock");
        ::close(fd);
        return kept ? 0 : 7;
    });
    CHECK(st.exited);
    CHECK(st.code == 0);
}

TEST_CASE("a creator that dies while writing the trailer leaves none that names nobody", "[liveness][gc]")
{
    temp_dir d;
    const pid_t creator = test_util::fork_child([&] {
        // A fresh process reads its start time from /proc when it writes its first trailer, after the
        // segment's file was created, sized and mapped: it dies right there.
        ndshm::detail::sys().read = [](int, void*, std::size_t) -> ssize_t {
            ::kill(::getpid(), SIGKILL);
            return -1;
        };
        (void)ndshm::shared_ndarray<double>::create({1000}, d.opts());
        return 1;
    });
    CHECK(test_util::wait_child(creator).signal == SIGKILL);
    const auto left = ndshm::list_segments(d.opts());
    REQUIRE(left.size() == 1);
    CHECK(left[0].kind == ndshm::segment_kind::unfinished);
    CHECK_FALSE(left[0].trailer); // not a magic without its creator's pid, which gc could never judge
    std::vector<ndshm::gc_entry> undecided;
    auto gone = names_of(ndshm::gc(d.opts(), false, &undecided));
    for (const auto& e : undecided) { // /proc could not be walked here: kept, and said why
        CHECK_FALSE(e.segment.trailer);
        gone.push_back(e.segment.name);
    }
    CHECK(gone == std::vector<std::string>{left[0].name});
}

TEST_CASE("a channel never reclaims a live holder's slots for want of descriptors", "[liveness][channel]")
{
    auto ch = ndshm::channel<double>::create({8}, 2);
    for (int i = 0; i < 2; ++i) {
        ch.publish(ch.loan());
    }
    test_util::event holding, never;
    const pid_t consumer = test_util::fork_child([&] {
        auto in = ndshm::channel<double>::attach(ch.name());
        auto a = in.receive();
        auto b = in.receive();
        holding.set(a.empty() || b.empty() ? 2 : 1);
        never.wait();
        return 0;
    });
    tools_util::child_guard guard(consumer);
    REQUIRE(holding.wait() == 1);
    // A producer with no descriptor free: it cannot read /proc, so it must not reclaim.
    CHECK(test_util::run_child([&] {
              if (!leave_free_descriptors(0)) {
                  return 10;
              }
              return ch.try_loan().empty() && ch.reclaimed() == 0 ? 0 : 1;
          }).ok());
    // Once the holder is gone, kill() says so without any descriptor.
    CHECK(guard.kill9().signal == SIGKILL);
    CHECK(test_util::run_child([&] {
              if (!leave_free_descriptors(0)) {
                  return 10;
              }
              return !ch.try_loan().empty() && ch.reclaimed() == 2 ? 0 : 1;
          }).ok());
}

TEST_CASE("a queue never takes back a live holder's pooled segment for want of descriptors", "[liveness][queue]")
{
    auto q = ndshm::array_queue::create(1, 1, {}); // one pooled segment at most
    const auto before = test_util::shm_entries();
    test_util::event holding, never;
    const pid_t producer = test_util::fork_child([&] {
        auto in = ndshm::array_queue::attach(q.name());
        auto a = in.make<double>({100}); // the pool's one record, held by this process
        holding.set(a.empty() ? 2 : 1);
        never.wait();
        return 0;
    });
    tools_util::child_guard guard(producer);
    REQUIRE(holding.wait() == 1);
    std::string held;
    for (const auto& n : test_util::shm_entries()) {
        if (std::find(before.begin(), before.end(), n) == before.end()) {
            held = n;
        }
    }
    REQUIRE_FALSE(held.empty());
    {
        // /proc cannot be read: the live holder cannot be judged, so its record stays its own and this
        // make gets a plain array outside the pool.
        sys_patch p;
        ndshm::detail::sys().openat = emfile_on_proc;
        auto other = ndshm::array_queue::attach(q.name());
        auto b = other.make<double>({100});
        CHECK(b.size() == 100);
        CHECK(test_util::shm_exists(held));
        const std::string plain = b.name();
        b.reset(); // a plain array: its owner's last handle unlinks it, it does not go to the pool
        CHECK_FALSE(test_util::shm_exists(plain));
    }
    // Once the holder is dead (kill() says so, no descriptor needed), its record is taken back: the
    // segment it held is removed, and the pool serves this process from then on.
    CHECK(guard.kill9().signal == SIGKILL);
    auto c = q.make<double>({100});
    CHECK_FALSE(test_util::shm_exists(held));
    const std::string pooled = c.name();
    c.reset(); // back to the pool
    CHECK(test_util::shm_exists(pooled));
    auto d = q.make<double>({100});
    CHECK(d.name() == pooled);
    CHECK(q.reused() == 1);
}

#ifdef NDSHM_TEST_TOOL
TEST_CASE("ndshm gc under a low descriptor limit keeps live segments and says what it could not judge",
          "[liveness][tool]")
{
    temp_dir d;
    test_util::event made, done;
    const pid_t creator = test_util::fork_child([&] {
        ndshm::options o = d.opts();
        o.name = "ndshm_live";
        auto a = shared_ndarray<double>::create({16}, o);
        made.set();
        done.wait();
        return 0;
    });
    tools_util::child_guard guard(creator);
    REQUIRE(made.wait() == 1);
    for (const int limit : {4, 5, 6, 64}) { // `ulimit -n 4`: stdin, stdout, stderr and one more
        INFO("ulimit -n " << limit);
        const std::string out = d.path + ".out", err = d.path + ".err";
        const pid_t pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            const int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
            const int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
            if (o < 0 || e < 0 || ::dup2(o, 1) < 0 || ::dup2(e, 2) < 0) {
                ::_exit(120);
            }
            ::closefrom(3);
            struct rlimit lim {};
            ::getrlimit(RLIMIT_NOFILE, &lim);
            lim.rlim_cur = static_cast<rlim_t>(limit);
            if (::setrlimit(RLIMIT_NOFILE, &lim) != 0) {
                ::_exit(121);
            }
            ::execl(NDSHM_TEST_TOOL, "ndshm", "--dir", d.path.c_str(), "gc", static_cast<char*>(nullptr));
            ::_exit(122);
        }
        const auto st = test_util::wait_child(pid);
        const auto o = tools_util::read_file(out), e = tools_util::read_file(err);
        const std::string text(o.begin(), o.end()), errors(e.begin(), e.end());
        INFO("stdout: " << text << "stderr: " << errors);
        CHECK(exists(d, "ndshm_live"));
        CHECK(st.exited);
        if (limit == 4) {
            CHECK(st.code == 5); // kept what it could not judge, and said so
            CHECK_THAT(errors, Catch::Contains("kept ndshm_live") && Catch::Contains("Too many open files"));
        } else {
            CHECK(st.code == 0);
        }
        (void)::unlink(out.c_str());
        (void)::unlink(err.c_str());
    }
    done.set();
    CHECK(guard.wait().ok());
}
#endif
