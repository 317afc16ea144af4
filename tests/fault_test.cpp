// Fault injection through the system-call table (detail/sys.hpp): every step of create, attach,
// unlink and free_all fails in turn with ENOSPC, EACCES, EMFILE, ENOMEM and EINTR. Each failure must
// give the ndshm exception that fits, an interrupted call that had no effect must be retried and
// succeed, and nothing may be left behind: no segment, no fd, no mapping.
#include <ndshm/all.hpp>

#include "test_util.hpp"
#include "tools_util.hpp"

#include <catch2/catch.hpp>

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
    inject(step s, int err) : m_saved(ndshm::detail::sys())
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
    ~inject()
    {
        ndshm::detail::sys() = m_saved;
        g_fault.which = step::none;
    }

private:
    ndshm::detail::sys_table m_saved;
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
        auto a = shared_ndarray<double>::create({512}, o);
        a(3) = 3.0;
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
