// Fault injection through the system-call table (detail/sys.hpp): every step of create, attach,
// unlink and free_all fails in turn with ENOSPC, EACCES, EMFILE, ENOMEM and EINTR. Each failure must
// give the ndshm exception that fits, an interrupted call that had no effect must be retried and
// succeed, and nothing may be left behind: no segment, no fd, no mapping.
#include <ndshm/all.hpp>

#include "sys_counter.hpp"
#include "test_util.hpp"
#include "tools_util.hpp"

#include <catch2/catch.hpp>

#include <linux/futex.h>
#include <poll.h>
#include <sys/wait.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <typeinfo>
#include <vector>

using ndshm::shared_ndarray;
namespace sysd = ndshm::detail::sys_default;

namespace {

enum class step {
    none,
    open, // shm_open or openat
    fchmod,
    fstatvfs,
    ftruncate,
    posix_fallocate,
    mmap,
    close,
    fstat,
    pread,
    unlink, // shm_unlink or unlinkat
    opendir,
    readdir,
    fstatat,
    closedir,
};

const char* step_name(step s)
{
    static const char* const names[] = {"none",    "open",    "fchmod",  "fstatvfs", "ftruncate", "posix_fallocate",
                                        "mmap",    "close",   "fstat",   "pread",    "unlink",    "opendir",
                                        "readdir", "fstatat", "closedir"};
    return names[static_cast<int>(s)];
}

const char* errno_name(int err)
{
    switch (err) {
    case ENOSPC:
        return "ENOSPC";
    case EACCES:
        return "EACCES";
    case EMFILE:
        return "EMFILE";
    case ENOMEM:
        return "ENOMEM";
    case EINTR:
        return "EINTR";
    default:
        return "?";
    }
}

constexpr int injected_errnos[] = {ENOSPC, EACCES, EMFILE, ENOMEM, EINTR};

struct fault_state {
    step which = step::none;
    int err = 0;
    int remaining = 0; // failures still to inject; -1: every call
    int hits = 0;      // failures injected
};
fault_state g_fault;

/// True if this call of `s` must fail (and counts it).
bool trip(step s)
{
    if (g_fault.which != s || g_fault.remaining == 0) {
        return false;
    }
    if (g_fault.remaining > 0) {
        --g_fault.remaining;
    }
    ++g_fault.hits;
    return true;
}

template <class R>
R fail_with(R r)
{
    errno = g_fault.err;
    return r;
}

int h_shm_open(const char* n, int f, mode_t m) { return trip(step::open) ? fail_with(-1) : sysd::shm_open(n, f, m); }
int h_openat(int d, const char* n, int f, mode_t m)
{
    return trip(step::open) ? fail_with(-1) : sysd::openat(d, n, f, m);
}
int h_shm_unlink(const char* n) { return trip(step::unlink) ? fail_with(-1) : sysd::shm_unlink(n); }
int h_unlinkat(int d, const char* n, int f) { return trip(step::unlink) ? fail_with(-1) : sysd::unlinkat(d, n, f); }
int h_ftruncate(int fd, off_t n) { return trip(step::ftruncate) ? fail_with(-1) : sysd::ftruncate(fd, n); }
int h_posix_fallocate(int fd, off_t o, off_t n)
{
    return trip(step::posix_fallocate) ? g_fault.err : sysd::posix_fallocate(fd, o, n);
}
int h_fstat(int fd, struct stat* st) { return trip(step::fstat) ? fail_with(-1) : sysd::fstat(fd, st); }
ssize_t h_pread(int fd, void* b, std::size_t n, off_t o)
{
    return trip(step::pread) ? fail_with(ssize_t(-1)) : sysd::pread(fd, b, n, o);
}
int h_fstatvfs(int fd, struct statvfs* st) { return trip(step::fstatvfs) ? fail_with(-1) : sysd::fstatvfs(fd, st); }
int h_fchmod(int fd, mode_t m) { return trip(step::fchmod) ? fail_with(-1) : sysd::fchmod(fd, m); }
void* h_mmap(void* a, std::size_t n, int p, int f, int fd, off_t o)
{
    return trip(step::mmap) ? fail_with(MAP_FAILED) : sysd::mmap(a, n, p, f, fd, o);
}
// A failing close still releases the descriptor, as Linux does (even for EINTR).
int h_close(int fd)
{
    const int r = sysd::close(fd);
    return trip(step::close) ? fail_with(-1) : r;
}
DIR* h_opendir(const char* p) { return trip(step::opendir) ? fail_with<DIR*>(nullptr) : sysd::opendir(p); }
dirent* h_readdir(DIR* d) { return trip(step::readdir) ? fail_with<dirent*>(nullptr) : sysd::readdir(d); }
int h_closedir(DIR* d)
{
    const int r = sysd::closedir(d);
    return trip(step::closedir) ? fail_with(-1) : r;
}
int h_fstatat(int d, const char* n, struct stat* st, int f)
{
    return trip(step::fstatat) ? fail_with(-1) : sysd::fstatat(d, n, st, f);
}

/// Installs the failing table for one step and errno; restores the real one at scope end.
/// EINTR is injected twice in a row (then the call goes through); other errors on every call.
class inject {
public:
    inject(step s, int err)
    {
        g_fault = fault_state{s, err, err == EINTR ? 2 : -1, 0};
        auto& t = ndshm::detail::sys();
        t.shm_open = h_shm_open;
        t.shm_unlink = h_shm_unlink;
        t.openat = h_openat;
        t.unlinkat = h_unlinkat;
        t.ftruncate = h_ftruncate;
        t.posix_fallocate = h_posix_fallocate;
        t.fstat = h_fstat;
        t.pread = h_pread;
        t.fstatvfs = h_fstatvfs;
        t.fchmod = h_fchmod;
        t.mmap = h_mmap;
        t.close = h_close;
        t.opendir = h_opendir;
        t.readdir = h_readdir;
        t.closedir = h_closedir;
        t.fstatat = h_fstatat;
    }
    inject(const inject&) = delete;
    inject& operator=(const inject&) = delete;
    ~inject() { g_fault.which = step::none; }

private:
    test_util::sys_patch m_restore; // puts the real table back after the destructor's body
};

enum class outcome { ok, out_of_space, permission_denied, error, other };

const char* outcome_name(outcome o)
{
    static const char* const names[] = {"success", "ndshm::out_of_space", "ndshm::permission_denied", "ndshm::error",
                                        "another exception"};
    return names[static_cast<int>(o)];
}

/// What a failure of `s` with `err` must give: steps whose failure is harmless (free space unknown,
/// a failing close or closedir, which still release) succeed, so do interrupted calls (retried).
outcome expected(step s, int err)
{
    if (s == step::fstatvfs || s == step::close || s == step::closedir || err == EINTR) {
        return outcome::ok;
    }
    switch (err) {
    case ENOSPC:
    case ENOMEM:
        return outcome::out_of_space;
    case EACCES:
        return outcome::permission_denied;
    default:
        return outcome::error; // EMFILE: the root class, with a hint about ulimit -n
    }
}

/// Runs f and tells how it ended; `what` gets the exception's message.
template <class F>
outcome run(F&& f, std::string& what)
{
    try {
        f();
        return outcome::ok;
    } catch (const ndshm::out_of_space& e) {
        what = e.what();
        return outcome::out_of_space;
    } catch (const ndshm::permission_denied& e) {
        what = e.what();
        return outcome::permission_denied;
    } catch (const ndshm::error& e) {
        what = e.what();
        return typeid(e) == typeid(ndshm::error) ? outcome::error : outcome::other;
    } catch (const std::exception& e) {
        what = e.what();
        return outcome::other;
    }
}

struct backend {
    const char* label;
    bool posix;
};
constexpr backend backends[] = {{"POSIX shm", true}, {"directory backend", false}};

} // namespace

TEST_CASE("every step of create fails cleanly or is retried", "[fault]")
{
    tools_util::temp_dir dir;
    for (const auto& b : backends) {
        for (const step s : {step::open, step::fchmod, step::fstatvfs, step::ftruncate, step::posix_fallocate,
                             step::mmap, step::close}) {
            for (const int err : injected_errnos) {
                INFO(b.label << ": " << step_name(s) << " fails with " << errno_name(err));
                ndshm::options o = b.posix ? ndshm::options{} : dir.opts();
                o.name = tools_util::test_name("fault");
                const std::string path = (b.posix ? std::string("/dev/shm") : dir.path) + "/" + o.name;
                tools_util::shm_guard guard(b.posix ? o.name : std::string());
                const int fds = test_util::open_fds();
                std::string what;
                bool was_there = false;
                outcome got = outcome::other;
                int hits = 0;
                {
                    inject fault(s, err);
                    got = run(
                        [&] {
                            auto a = shared_ndarray<double>::create({512}, o);
                            a(511) = 1.0;
                            was_there = tools_util::file_exists(path) && a(511) == 1.0 && a(0) == 0.0;
                        },
                        what);
                    hits = g_fault.hits;
                }
                CHECK(hits > 0);
                CHECK(outcome_name(got) == std::string(outcome_name(expected(s, err))));
                if (got == outcome::ok) {
                    CHECK(was_there);
                } else {
                    CHECK_THAT(what, Catch::Contains(o.name) && Catch::Contains("create"));
                }
                CHECK_FALSE(tools_util::file_exists(path));
                CHECK(test_util::open_fds() == fds);
                CHECK(tools_util::mappings_of(o.name) == 0);
            }
        }
    }
}

TEST_CASE("every step of attach fails cleanly or is retried", "[fault]")
{
    tools_util::temp_dir dir;
    for (const auto& b : backends) {
        ndshm::options o = b.posix ? ndshm::options{} : dir.opts();
        o.name = tools_util::test_name("fault");
        tools_util::shm_guard guard(b.posix ? o.name : std::string());
        auto created = shared_ndarray<double>::create({512}, o);
        created(3) = 3.0;
        created.persist();
        // A read-only handle keeps the segment mapped: the writable attaches below map it themselves (a
        // writable handle alive in this process would be shared instead, with no read and no mmap).
        const auto a = shared_ndarray<const double>::attach(created.name(), o);
        created.reset();
        const int maps = tools_util::mappings_of(o.name);
        REQUIRE(maps >= 1);
        for (const step s : {step::open, step::fstat, step::pread, step::mmap, step::close}) {
            for (const int err : injected_errnos) {
                INFO(b.label << ": " << step_name(s) << " fails with " << errno_name(err));
                const int fds = test_util::open_fds();
                std::string what;
                double seen = 0;
                outcome got = outcome::other;
                int hits = 0;
                {
                    inject fault(s, err);
                    got = run([&] { seen = shared_ndarray<double>::attach(a.name(), o)(3); }, what);
                    hits = g_fault.hits;
                }
                CHECK(hits > 0);
                CHECK(outcome_name(got) == std::string(outcome_name(expected(s, err))));
                if (got == outcome::ok) {
                    CHECK(seen == 3.0);
                } else {
                    CHECK_THAT(what, Catch::Contains(o.name) && Catch::Contains("attach"));
                }
                CHECK(test_util::open_fds() == fds);
                CHECK(tools_util::mappings_of(o.name) == maps);
                CHECK(a(3) == 3.0); // the segment itself is untouched
            }
        }
    }
}

TEST_CASE("a failing unlink keeps the name and its ownership, and an interrupted one is retried", "[fault]")
{
    tools_util::temp_dir dir;
    for (const auto& b : backends) {
        for (const int err : injected_errnos) {
            INFO(b.label << ": unlink fails with " << errno_name(err));
            ndshm::options o = b.posix ? ndshm::options{} : dir.opts();
            o.name = tools_util::test_name("fault");
            const std::string path = (b.posix ? std::string("/dev/shm") : dir.path) + "/" + o.name;
            tools_util::shm_guard guard(b.posix ? o.name : std::string());
            const int fds = test_util::open_fds();
            {
                auto a = shared_ndarray<double>::create({64}, o);
                std::string what;
                outcome got = outcome::other;
                int hits = 0;
                {
                    inject fault(step::unlink, err);
                    got = run([&] { ndshm::unlink(o.name, o); }, what);
                    hits = g_fault.hits;
                }
                CHECK(hits > 0);
                CHECK(outcome_name(got) == std::string(outcome_name(expected(step::unlink, err))));
                CHECK(tools_util::file_exists(path) == (got != outcome::ok));
                if (got != outcome::ok) {
                    CHECK_THAT(what, Catch::Contains(o.name) && Catch::Contains("unlink"));
                }
            } // the owning handle removes a name that the failed unlink left
            CHECK_FALSE(tools_util::file_exists(path));
            CHECK(test_util::open_fds() == fds);
            CHECK(tools_util::mappings_of(o.name) == 0);
        }
    }
}

TEST_CASE("every step of free_all fails cleanly or is retried", "[fault]")
{
    // free_all sweeps all of /dev/shm for the calling user: run it under a uid of this test's own, so
    // that it cannot touch the segments of tests running in parallel.
    tools_util::temp_dir dir;
    REQUIRE(::chmod(dir.path.c_str(), 0777) == 0);
    const auto uid = static_cast<uid_t>(60000 + ::getpid() % 5000);
    const auto st = test_util::run_child([&] {
        if (!tools_util::become_uid(uid)) {
            return 10;
        }
        int failures = 0;
        const auto fail = [&](const std::string& what) {
            std::fprintf(stderr, "free_all fault test: %s\n", what.c_str());
            ++failures;
        };
        const ndshm::options o = dir.opts();
        for (const step s : {step::opendir, step::readdir, step::fstatat, step::closedir, step::unlink}) {
            for (const int err : injected_errnos) {
                const std::string label = std::string(step_name(s)) + " fails with " + errno_name(err) + ": ";
                std::vector<std::string> names;
                for (int i = 0; i < 4; ++i) { // two in /dev/shm, two in the directory backend
                    auto a = shared_ndarray<double>::create({8}, i % 2 == 0 ? ndshm::options{} : o);
                    a.persist();
                    names.push_back((i % 2 == 0 ? std::string("/dev/shm") : dir.path) + "/" + a.name());
                }
                const int fds = test_util::open_fds();
                std::string what;
                std::size_t removed = 0;
                outcome got = outcome::other;
                int hits = 0;
                {
                    inject fault(s, err);
                    got = run([&] { removed = ndshm::free_all(o); }, what);
                    hits = g_fault.hits;
                }
                if (hits == 0) {
                    fail(label + "the step was never called");
                }
                if (got != expected(s, err)) {
                    fail(label + outcome_name(got) + " instead of " + outcome_name(expected(s, err)) + " (" + what +
                         ")");
                }
                if (got != outcome::ok && what.find("free_all") == std::string::npos) {
                    fail(label + "the message does not name free_all: " + what);
                }
                if (got == outcome::ok && removed != 4) {
                    fail(label + "removed " + std::to_string(removed) + " segments instead of 4");
                }
                if (test_util::open_fds() != fds) {
                    fail(label + "an fd leaked");
                }
                const std::size_t left = ndshm::free_all(o); // what the failure left
                (void)left;
                for (const auto& n : names) {
                    if (tools_util::file_exists(n)) {
                        fail(label + n + " survived a free_all without faults");
                    }
                }
            }
        }
        return failures == 0 ? 0 : 1;
    });
    CHECK(st.exited);
    CHECK(st.code == 0);
}

// ---- the rest of the table: randomness, /proc, the pool's processes and pipes, madvise, futex ------

namespace {

/// A fault for one table entry: calls from number `from` on fail with `err`, `count` times (-1: always).
struct call_fault {
    int err = 0;
    int from = 1;
    int count = -1;
    int calls = 0;
    int failed = 0;
    bool trip()
    {
        ++calls;
        if (calls >= from && (count < 0 || failed < count)) {
            ++failed;
            errno = err;
            return true;
        }
        return false;
    }
};

call_fault g_getrandom, g_urandom, g_proc, g_fork, g_pipe2, g_poll, g_read, g_madvise, g_futex;
int g_urandom_opens = 0;

ssize_t f_getrandom(void* b, std::size_t n, unsigned f) { return g_getrandom.trip() ? -1 : sysd::getrandom(b, n, f); }
int f_openat(int d, const char* path, int f, mode_t m)
{
    if (std::strcmp(path, "/dev/urandom") == 0) {
        ++g_urandom_opens;
        if (g_urandom.trip()) {
            return -1;
        }
    }
    if (std::strncmp(path, "/proc/", 6) == 0 && g_proc.trip()) {
        return -1;
    }
    return sysd::openat(d, path, f, m);
}
pid_t f_fork() { return g_fork.trip() ? -1 : sysd::fork(); }
int f_pipe2(int* fds, int flags) { return g_pipe2.trip() ? -1 : sysd::pipe2(fds, flags); }
int f_poll(struct pollfd* fds, nfds_t n, int t) { return g_poll.trip() ? -1 : sysd::poll(fds, n, t); }
ssize_t f_read(int fd, void* b, std::size_t n) { return g_read.trip() ? -1 : sysd::read(fd, b, n); }
int f_madvise(void* a, std::size_t n, int advice) { return g_madvise.trip() ? -1 : sysd::madvise(a, n, advice); }
long f_futex(std::uint32_t* w, int op, std::uint32_t v, const struct timespec* t)
{
    return op == FUTEX_WAIT && g_futex.trip() ? -1 : sysd::futex(w, op, v, t);
}

/// Installs the hooks above with fresh faults (none failing until set), and restores the table.
class call_faults {
public:
    call_faults()
    {
        for (call_fault* f :
             {&g_getrandom, &g_urandom, &g_proc, &g_fork, &g_pipe2, &g_poll, &g_read, &g_madvise, &g_futex}) {
            *f = call_fault{0, 1, 0};
        }
        g_urandom_opens = 0;
        auto& t = ndshm::detail::sys();
        t.getrandom = f_getrandom;
        t.openat = f_openat;
        t.fork = f_fork;
        t.pipe2 = f_pipe2;
        t.poll = f_poll;
        t.read = f_read;
        t.madvise = f_madvise;
        t.futex = f_futex;
    }
    call_faults(const call_faults&) = delete;
    call_faults& operator=(const call_faults&) = delete;

private:
    test_util::sys_patch m_restore;
};

double twice(double x) { return 2 * x; }
long worker_pid() { return static_cast<long>(::getpid()); }

/// True if this process has no child left (every worker was reaped).
bool no_children()
{
    int status = 0;
    return ::waitpid(-1, &status, WNOHANG) == -1 && errno == ECHILD;
}

} // namespace

TEST_CASE("generated names come from /dev/urandom when getrandom fails, never from a predictable source", "[fault]")
{
    tools_util::temp_dir dir;
    for (const int err : {ENOSYS, EAGAIN, EPERM}) {
        INFO("getrandom fails with " << err);
        call_faults hooks;
        g_getrandom = call_fault{err};
        std::vector<std::string> names;
        for (int i = 0; i < 3; ++i) {
            names.push_back(shared_ndarray<double>::create({4}, dir.opts()).name());
        }
        CHECK(g_getrandom.failed == 3);
        CHECK(g_urandom_opens == 3);
        CHECK(names[0] != names[1]);
        CHECK(names[1] != names[2]);
        CHECK(names[0].rfind("ndshm_", 0) == 0);
        CHECK(names[0].size() <= 30);
    }
    SECTION("neither getrandom nor /dev/urandom: create refuses, and leaves nothing")
    {
        const int fds = test_util::open_fds();
        call_faults hooks;
        g_getrandom = call_fault{ENOSYS};
        g_urandom = call_fault{EMFILE};
        std::string what;
        const outcome got = run([&] { (void)shared_ndarray<double>::create({4}, dir.opts()); }, what);
        CHECK(outcome_name(got) == std::string(outcome_name(outcome::error)));
        CHECK_THAT(what, Catch::Contains("no randomness") && Catch::Contains("getrandom") &&
                             Catch::Contains("/dev/urandom") && Catch::Contains("options::name"));
        CHECK(std::filesystem::is_empty(dir.path));
        CHECK(test_util::open_fds() == fds);
    }
}

TEST_CASE("a /proc that cannot be read leaves a start time unknown, never wrong", "[fault]")
{
    tools_util::temp_dir dir;
    // In a fresh child: this process may have read (and kept) its start time already.
    const auto st = test_util::run_child([&] {
        ndshm::options o = dir.opts();
        o.name = "ndshm_unknown_start";
        auto a = [&] {
            call_faults hooks;
            g_proc = call_fault{EMFILE};
            auto made = shared_ndarray<double>::create({4}, o);
            if (g_proc.failed == 0) {
                std::exit(1);
            }
            const auto s = ndshm::inspect(o.name, o);
            // Alive, but /proc cannot confirm the start time: unknown, and gc keeps it and says so.
            if (s.creator != ndshm::creator_status::unknown ||
                s.creator_detail.find("Too many open files") == std::string::npos || !ndshm::gc_reason(s).empty() ||
                ndshm::gc_doubt(s).empty()) {
                std::exit(2);
            }
            return made;
        }();
        const auto* t = ndshm::detail::array_access::mapping_of(a)->get_trailer();
        if (t->creator_pid != static_cast<std::uint64_t>(::getpid()) || t->creator_start != 0) {
            return 3; // the start time is recorded as unknown, not guessed
        }
        // With /proc back, the next segment records the start time: the failure was not remembered.
        ndshm::options o2 = dir.opts();
        o2.name = "ndshm_known_start";
        auto b = shared_ndarray<double>::create({4}, o2);
        if (ndshm::detail::array_access::mapping_of(b)->get_trailer()->creator_start !=
            ndshm::detail::process_start_time(::getpid())) {
            return 4;
        }
        return ndshm::inspect(o.name, o).creator == ndshm::creator_status::alive ? 0 : 5;
    });
    CHECK(st.exited);
    CHECK(st.code == 0);
}

TEST_CASE("the pool retries EINTR from poll and read, and fails cleanly when fork or pipe2 fail", "[fault][pool]")
{
    // In a child, so that "no child process is left" speaks of this pool's workers only.
    const auto st = test_util::run_child([] {
        int failures = 0;
        const auto expect = [&](bool ok, const char* what) {
            if (!ok) {
                std::fprintf(stderr, "pool fault test: %s\n", what);
                ++failures;
            }
        };
        const int fds = test_util::open_fds();
        {
            call_faults hooks;
            g_poll = call_fault{EINTR, 1, 3};
            g_read = call_fault{EINTR, 1, 5};
            ndshm::fork_pool pool(2);
            const std::vector<double> out = pool.map(twice, std::vector<double>{1, 2, 3, 4, 5});
            expect(out == std::vector<double>{2, 4, 6, 8, 10}, "map through EINTR gave wrong results");
            expect(g_poll.failed == 3 && g_read.failed >= 1, "the EINTR hooks were not reached");
        }
        expect(no_children(), "workers left after the pool went (EINTR)");
        for (const int from : {1, 2}) {
            call_faults hooks;
            g_fork = call_fault{EAGAIN, from, 1};
            std::string what;
            try {
                ndshm::fork_pool pool(3);
                expect(false, "fork_pool(3) succeeded although a fork failed");
            } catch (const ndshm::error& e) {
                what = e.what();
            }
            expect(what.find("fork failed") != std::string::npos && what.find("ulimit -u") != std::string::npos,
                   "the fork failure's message names neither the call nor the fix");
            expect(no_children(), "a worker forked before the failure was left behind");
            expect(test_util::open_fds() == fds, "a pipe leaked after a failed fork");
        }
        for (const int from : {1, 3}) {
            call_faults hooks;
            g_pipe2 = call_fault{EMFILE, from, 1};
            std::string what;
            try {
                ndshm::fork_pool pool(2);
                expect(false, "fork_pool(2) succeeded although pipe2 failed");
            } catch (const ndshm::error& e) {
                what = e.what();
            }
            expect(what.find("pipe2") != std::string::npos && what.find("ulimit -n") != std::string::npos,
                   "the pipe2 failure's message names neither the call nor the fix");
            expect(no_children(), "a worker was left behind after pipe2 failed");
            expect(test_util::open_fds() == fds, "a pipe leaked after pipe2 failed");
        }
        {
            // A worker dies; forking its replacement fails once; the next call replaces it.
            ndshm::fork_pool pool(1);
            const long first = pool.run(worker_pid);
            ::kill(static_cast<pid_t>(first), SIGKILL);
            {
                call_faults hooks;
                g_fork = call_fault{EAGAIN, 1, 1};
                bool threw = false;
                try {
                    (void)pool.run(worker_pid);
                } catch (const ndshm::error&) {
                    threw = true;
                }
                expect(threw && g_fork.failed == 1, "a failed replacement did not make the call fail");
            }
            const long second = pool.run(worker_pid);
            expect(second > 0 && second != first, "the pool did not replace its worker at the next call");
        }
        expect(no_children(), "workers left after the pool went");
        return failures == 0 ? 0 : 1;
    });
    CHECK(st.exited);
    CHECK(st.code == 0);
}

TEST_CASE("a failing madvise only costs the queue its prefault, and futex waits cut short by EINTR re-check",
          "[fault][queue]")
{
    tools_util::temp_dir dir;
    ndshm::options o = dir.opts();
    o.populate = true;
    auto q = ndshm::array_queue::create(2, o);
    {
        call_faults hooks;
        g_madvise = call_fault{ENOMEM};
        auto a = shared_ndarray<double>::create({1024}, dir.opts());
        a(1023) = 5.0;
        q.push(std::move(a));
        auto b = q.pop<double>();
        REQUIRE_FALSE(b.empty());
        CHECK(b(1023) == 5.0);
        CHECK(g_madvise.failed > 0);
    }
    {
        call_faults hooks;
        g_futex = call_fault{EINTR}; // every wait returns at once, as if a signal arrived
        shared_ndarray<double> none;
        const double ms = test_util::elapsed_ms([&] { none = q.pop<double>(std::chrono::milliseconds(50)); });
        CHECK(none.empty());
        CHECK(ms >= 50); // woken early every time, it still waits out its timeout
        CHECK(ms < 50 + 1000);
        CHECK(g_futex.failed > 0);
        test_util::event go;
        const pid_t pid = test_util::fork_child([&] {
            go.wait();
            auto c = shared_ndarray<double>::create({2}, dir.opts());
            c(1) = 7.0;
            q.push(std::move(c));
            return 0;
        });
        go.set();
        auto got = q.pop<double>(std::chrono::seconds(20));
        CHECK(test_util::wait_child(pid).ok());
        REQUIRE_FALSE(got.empty());
        CHECK(got(1) == 7.0);
    }
}
