// The store (store.hpp): put/append/get, one load per machine with racing processes, a loader that
// blocks or dies, the directory backend and NDSHM_DIR, release on close, and bad input.
#include <ndshm/all.hpp>

#include <xtensor/xbuilder.hpp>
#include <xtensor/xview.hpp>

#include "objects_util.hpp"
#include "test_util.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <set>
#include <string>
#include <vector>

using ndshm::row_range;
using ndshm::store;
using objects_util::temp_dir;

namespace {

xt::xarray<double> dataset(std::size_t rows = 1000) { return xt::arange<double>(double(rows * 8)).reshape({rows, 8}); }

/// A pipe on which children send fixed-size reports to the parent.
class report_pipe {
public:
    static constexpr std::size_t size = 48;
    report_pipe()
    {
        if (::pipe2(m_fd, O_CLOEXEC) != 0) {
            throw std::runtime_error("pipe failed");
        }
    }
    report_pipe(const report_pipe&) = delete;
    report_pipe& operator=(const report_pipe&) = delete;
    ~report_pipe()
    {
        ::close(m_fd[0]);
        ::close(m_fd[1]);
    }
    /// Child: sends whether its array was right, how many arrays its store loaded, and the segment name.
    void send(bool ok, std::size_t loaded, const std::string& name) const
    {
        char msg[size] = {};
        msg[0] = ok ? 'k' : 'x';
        msg[1] = static_cast<char>('0' + loaded);
        std::memcpy(msg + 2, name.data(), std::min(name.size(), size - 3));
        (void)!::write(m_fd[1], msg, size); // at most PIPE_BUF: one atomic write
    }
    struct report {
        bool ok = false;
        int loaded = -1;
        std::string name;
    };
    /// Parent: the next report (loaded == -1 if every child is gone without sending).
    report receive() const
    {
        char msg[size] = {};
        std::size_t got = 0;
        while (got < size) {
            const ssize_t r = ::read(m_fd[0], msg + got, size - got);
            if (r <= 0) {
                if (r < 0 && errno == EINTR) {
                    continue;
                }
                return {};
            }
            got += static_cast<std::size_t>(r);
        }
        return report{msg[0] == 'k', msg[1] - '0', std::string(msg + 2)};
    }

private:
    int m_fd[2];
};

/// `n` processes open the store at `dir` and get "x" at the same moment; each keeps its store until
/// all have reported. Returns the reports.
std::vector<report_pipe::report> race(const std::string& dir, int n, const ndshm::options& opt,
                                      const std::function<void()>& child_setup = {})
{
    test_util::event go;
    test_util::event release;
    report_pipe reports;
    std::vector<pid_t> pids;
    for (int i = 0; i < n; ++i) {
        pids.push_back(test_util::fork_child([&] {
            if (child_setup) {
                child_setup();
            }
            go.wait();
            store s(dir, opt);
            const auto a = s.get<double>("x");
            reports.send(a.view() == dataset(), s.stats().loaded, a.name());
            release.wait();
            return 0;
        }));
    }
    for (int i = 0; i < n; ++i) {
        go.set();
    }
    std::vector<report_pipe::report> out;
    for (int i = 0; i < n; ++i) {
        out.push_back(reports.receive());
    }
    for (int i = 0; i < n; ++i) {
        release.set();
    }
    for (const pid_t pid : pids) {
        CHECK(test_util::wait_child(pid).ok());
    }
    return out;
}

/// Checks that exactly one of the racers loaded, every one got the right array under one name.
std::string check_one_loaded(const std::vector<report_pipe::report>& reports)
{
    int loaded = 0;
    std::set<std::string> names;
    for (const auto& r : reports) {
        CHECK(r.ok);
        loaded += r.loaded;
        names.insert(r.name);
    }
    CHECK(loaded == 1);
    REQUIRE(names.size() == 1);
    return *names.begin();
}

// The loader hooks below are plain function pointers, so their state is global.
std::size_t g_data_offset = 0;
const test_util::event* g_loading = nullptr;
const test_util::event* g_continue = nullptr;

ssize_t pread_that_pauses(int fd, void* b, std::size_t n, off_t o)
{
    static bool paused = false;
    if (static_cast<std::size_t>(o) >= g_data_offset && !paused) { // the data, not the header
        paused = true;
        g_loading->set();
        g_continue->wait();
    }
    return ::pread(fd, b, n, o);
}

ssize_t pread_that_dies(int fd, void* b, std::size_t n, off_t o)
{
    if (static_cast<std::size_t>(o) >= g_data_offset) {
        g_loading->set();
        g_continue->wait();
        ::raise(SIGKILL);
    }
    return ::pread(fd, b, n, o);
}

/// Sets an environment variable for the scope.
struct scoped_env {
    std::string name;
    scoped_env(std::string n, const std::string& value) : name(std::move(n))
    {
        ::setenv(name.c_str(), value.c_str(), 1);
    }
    ~scoped_env() { ::unsetenv(name.c_str()); }
};

} // namespace

TEST_CASE("put and get round-trip, a second get reuses the segment", "[store]")
{
    temp_dir dir("store");
    store s(dir.path() + "/sub/dataset"); // created if missing
    CHECK(s.directory() == dir.path() + "/sub/dataset");
    s.put("x", dataset());
    CHECK(s.contains("x"));
    CHECK(!s.contains("y"));
    CHECK(s.keys() == std::vector<std::string>{"x"});
    CHECK(s.path("x") == s.directory() + "/x.npy");
    const auto a = s.get<double>("x");
    CHECK((a.view() == dataset()));
    CHECK(a.name().size() <= 30);
    CHECK(a.name().rfind("ndshm_", 0) == 0);
    CHECK(test_util::shm_exists(a.name()));
    const auto b = s.get<double>("x");
    CHECK(b.data() == a.data());
    CHECK(s.stats().loaded == 1);
    CHECK(s.stats().attached == 0);
    // The array on disk is a plain .npy.
    CHECK((ndshm::read_npy<double>(s.path("x")).view() == dataset()));
}

TEST_CASE("another process attaches what this one loaded", "[store][multiprocess]")
{
    temp_dir dir("store");
    store s(dir.path());
    s.put("x", dataset());
    const auto a = s.get<double>("x");
    const std::string name = a.name();
    CHECK(test_util::run_child([&] {
              store t(dir.path());
              const auto b = t.get<double>("x");
              return b.name() == name && b.view() == dataset() && t.stats().loaded == 0 && t.stats().attached == 1 ? 0
                                                                                                                   : 1;
          }).ok());
    CHECK(test_util::shm_exists(name)); // the child's store released nothing of this one's
}

TEST_CASE("when processes race, exactly one loads", "[store][multiprocess]")
{
    temp_dir dir("store");
    {
        store s(dir.path());
        s.put("x", dataset());
    }
    const std::string name = check_one_loaded(race(dir.path(), 6, {}));
    CHECK(!test_util::shm_exists(name));
    CHECK(!test_util::shm_exists(name + ".lock"));
}

TEST_CASE("the directory backend and NDSHM_DIR work the same way", "[store][multiprocess]")
{
    temp_dir dir("store");
    temp_dir scratch("scratch");
    {
        store s(dir.path());
        s.put("x", dataset());
    }
    ndshm::options o;
    o.directory = scratch.path();
    {
        store s(dir.path(), o);
        const auto a = s.get<double>("x");
        CHECK(!test_util::shm_exists(a.name()));
        CHECK(scratch.entries() == std::vector<std::string>{a.name()});
    }
    CHECK(scratch.entries().empty());
    check_one_loaded(race(dir.path(), 4, o));
    CHECK(scratch.entries().empty());
    // NDSHM_DIR, set in each racing process.
    const std::string path = scratch.path();
    check_one_loaded(race(dir.path(), 4, {}, [path] { ::setenv("NDSHM_DIR", path.c_str(), 1); }));
    CHECK(scratch.entries().empty());
    {
        scoped_env env("NDSHM_DIR", scratch.path());
        store s(dir.path());
        const auto a = s.get<double>("x");
        CHECK(scratch.entries() == std::vector<std::string>{a.name()});
    }
    CHECK(scratch.entries().empty());
}

TEST_CASE("a process that asks while another loads waits for it, then attaches", "[store][multiprocess]")
{
    temp_dir dir("store");
    {
        store s(dir.path());
        s.put("x", dataset());
    }
    g_data_offset = ndshm::read_npy_header(dir / "x.npy").data_offset;
    test_util::event loading;
    test_util::event proceed;
    test_util::event release;
    report_pipe reports;
    g_loading = &loading;
    g_continue = &proceed;
    const auto racer = [&](bool slow) {
        return test_util::fork_child([&, slow] {
            if (slow) {
                ndshm::detail::sys().pread = pread_that_pauses;
            }
            store s(dir.path());
            const auto a = s.get<double>("x");
            reports.send(a.view() == dataset(), s.stats().loaded, a.name());
            release.wait();
            return 0;
        });
    };
    const pid_t loader = racer(true);
    CHECK(loading.wait() == 1); // the loader has created the segment and is reading the file
    const pid_t waiter = racer(false);
    proceed.set();
    const auto first = reports.receive();
    const auto second = reports.receive();
    release.set();
    release.set();
    CHECK(test_util::wait_child(loader).ok());
    CHECK(test_util::wait_child(waiter).ok());
    CHECK(first.ok);
    CHECK(second.ok);
    CHECK(first.name == second.name);
    CHECK(first.loaded + second.loaded == 1);
    CHECK(!test_util::shm_exists(first.name));
    CHECK(!test_util::shm_exists(first.name + ".lock"));
}

TEST_CASE("a loader that dies is replaced by the next process that asks", "[store][multiprocess][crash]")
{
    temp_dir dir("store");
    {
        store s(dir.path());
        s.put("x", dataset());
    }
    g_data_offset = ndshm::read_npy_header(dir / "x.npy").data_offset;
    test_util::event loading;
    test_util::event die;
    test_util::event release;
    report_pipe reports;
    g_loading = &loading;
    g_continue = &die;
    const pid_t loader = test_util::fork_child([&] {
        ndshm::detail::sys().pread = pread_that_dies;
        store s(dir.path());
        (void)s.get<double>("x");
        return 0;
    });
    CHECK(loading.wait() == 1);
    const pid_t next = test_util::fork_child([&] {
        store s(dir.path());
        const auto a = s.get<double>("x");
        reports.send(a.view() == dataset(), s.stats().loaded, a.name());
        release.wait();
        return 0;
    });
    die.set();
    CHECK(test_util::wait_child(loader).signal == SIGKILL);
    const auto r = reports.receive();
    release.set();
    CHECK(test_util::wait_child(next).ok());
    CHECK(r.ok);
    CHECK(r.loaded == 1); // it loaded again, over what the dead loader left
    CHECK(!test_util::shm_exists(r.name));
    CHECK(!test_util::shm_exists(r.name + ".lock"));
}

TEST_CASE("closing the store releases what it loaded, handles stay valid", "[store][lifetime]")
{
    temp_dir dir("store");
    store s(dir.path());
    s.put("x", dataset());
    const auto a = s.get<double>("x");
    const std::string name = a.name();
    CHECK(test_util::run_child([&] {
              s.close(); // a forked child's store releases nothing of the parent's
              return 0;
          }).ok());
    CHECK(test_util::shm_exists(name));
    s.close();
    CHECK(!test_util::shm_exists(name));
    CHECK((a.view() == dataset()));
    const auto b = s.get<double>("x"); // loads again
    CHECK(test_util::shm_exists(b.name()));
    CHECK(s.stats().loaded == 2);
    {
        store t(dir.path());
        const auto c = t.get<double>("x");
        CHECK(t.stats().attached == 1);
    }
    CHECK(test_util::shm_exists(b.name())); // t did not load it, so t does not release it
    std::string moved_name;
    {
        store m = std::move(s);
        moved_name = m.get<double>("x").name();
        CHECK_THROWS_AS(s.keys(), ndshm::error);
    }
    CHECK(!test_util::shm_exists(moved_name));
}

TEST_CASE("row ranges get their own segment holding only those rows", "[store]")
{
    temp_dir dir("store");
    store s(dir.path());
    s.put("x", dataset());
    const auto all = s.get<double>("x");
    const auto part = s.get<double>("x", row_range{100, 250});
    CHECK(part.shape() == ndshm::shape_type{150, 8});
    CHECK((part.view() == xt::view(dataset(), xt::range(100, 250), xt::all())));
    CHECK(part.name() != all.name());
    CHECK(s.get<double>("x", row_range{100, 250}).data() == part.data());
    CHECK(s.stats().loaded == 2);
    CHECK_THROWS_AS(s.get<double>("x", row_range{900, 2000}), ndshm::error);
}

TEST_CASE("put replaces atomically, old handles keep the old array", "[store]")
{
    temp_dir dir("store");
    store s(dir.path());
    s.put("x", dataset());
    const auto old = s.get<double>("x");
    const auto replacement = ndshm::shared_ndarray<double>::from_array(xt::xarray<double>{{1, 2}, {3, 4}});
    s.put("x", replacement);
    const auto now = s.get<double>("x");
    CHECK(now.name() != old.name());
    CHECK((now.view() == replacement.view()));
    CHECK((old.view() == dataset()));
    CHECK(dir.entries() == std::vector<std::string>{"x.npy"});
}

TEST_CASE("append adds rows atomically", "[store]")
{
    temp_dir dir("store");
    store s(dir.path());
    s.put("x", dataset(10));
    const auto before = s.get<double>("x");
    s.append("x", xt::xarray<double>(xt::ones<double>({5, 8})));
    s.append("x", xt::xarray<double>(xt::zeros<double>({8}))); // one row
    const auto after = s.get<double>("x");
    REQUIRE(after.shape() == ndshm::shape_type{16, 8});
    CHECK((xt::view(after.view(), xt::range(0, 10), xt::all()) == dataset(10)));
    CHECK((xt::view(after.view(), xt::range(10, 15), xt::all()) == xt::ones<double>({5, 8})));
    CHECK((xt::view(after.view(), 15, xt::all()) == xt::zeros<double>({8})));
    CHECK(after.name() != before.name());
    CHECK(before.shape()[0] == 10);
    // A Fortran-order shared array is appended in C order.
    auto f = ndshm::shared_ndarray<double>::create({2, 8}, ndshm::order::fortran);
    f.view() = xt::arange<double>(16.0).reshape({2, 8});
    s.append("x", f);
    CHECK((xt::view(s.get<double>("x").view(), xt::range(16, 18), xt::all()) == f.view()));
    // Appending to a key that does not exist creates it.
    s.append("fresh", xt::xarray<std::int32_t>{{1, 2}});
    CHECK((s.get<std::int32_t>("fresh").view() == xt::xarray<std::int32_t>{{1, 2}}));
    // Rows that do not fit.
    CHECK_THROWS_AS(s.append("x", xt::xarray<float>(xt::ones<float>({1, 8}))), ndshm::dtype_mismatch);
    CHECK_THROWS_WITH(s.append("x", xt::xarray<double>(xt::ones<double>({1, 7}))), Catch::Contains("do not fit"));
    s.put("fortran", f);
    CHECK_THROWS_WITH(s.append("fortran", xt::xarray<double>(xt::ones<double>({1, 8}))),
                      Catch::Contains("Fortran order"));
    s.put("scalar", xt::xarray<double>(1.0));
    CHECK_THROWS_WITH(s.append("scalar", xt::xarray<double>(1.0)), Catch::Contains("0-dimensional"));
    // Nothing but the arrays in the directory: no temporary file is left.
    CHECK(dir.entries() == std::vector<std::string>{"fortran.npy", "fresh.npy", "scalar.npy", "x.npy"});
}

TEST_CASE("concurrent appends from several processes all land", "[store][multiprocess]")
{
    temp_dir dir("store");
    {
        store s(dir.path());
        s.put("log", xt::xarray<std::int64_t>(xt::zeros<std::int64_t>({0, 2})));
    }
    test_util::event go;
    std::vector<pid_t> pids;
    for (int c = 0; c < 4; ++c) {
        pids.push_back(test_util::fork_child([&, c] {
            go.wait();
            store s(dir.path());
            for (int i = 0; i < 25; ++i) {
                s.append("log", xt::xarray<std::int64_t>{c, i});
            }
            return 0;
        }));
    }
    for (int c = 0; c < 4; ++c) {
        go.set();
    }
    for (const pid_t pid : pids) {
        CHECK(test_util::wait_child(pid).ok());
    }
    store s(dir.path());
    const auto log = s.get<std::int64_t>("log");
    REQUIRE(log.shape() == ndshm::shape_type{100, 2});
    std::set<std::pair<std::int64_t, std::int64_t>> seen;
    for (std::size_t r = 0; r < 100; ++r) {
        seen.emplace(log(r, 0), log(r, 1));
    }
    CHECK(seen.size() == 100);
    CHECK(dir.entries() == std::vector<std::string>{"log.npy"});
}

TEST_CASE("the store reads what NumPy saved", "[store][numpy]")
{
    temp_dir dir("store");
    REQUIRE(objects_util::numpy({"save", dir / "from_numpy.npy", "<f4", "20,3", "C"}).ok());
    store s(dir.path());
    CHECK(s.keys() == std::vector<std::string>{"from_numpy"});
    const auto a = s.get<float>("from_numpy", row_range{5, 7});
    CHECK(a.shape() == ndshm::shape_type{2, 3});
    CHECK(a(0, 0) == 15.0f / 2 - 3); // flat index 15
}

TEST_CASE("bad keys, missing arrays, wrong types and corrupt files get clear errors", "[store][bad-input]")
{
    temp_dir dir("store");
    store s(dir.path());
    const std::vector<std::string> bad_keys{
        "", "../x", "a/b", ".hidden", std::string(201, 'k'), std::string("nul\0x", 5)};
    for (const std::string& key : bad_keys) {
        CHECK_THROWS_WITH(s.put(key, xt::xarray<double>{1}), Catch::Contains("invalid key"));
    }
    CHECK_THROWS_AS(s.get<double>("missing"), ndshm::not_found);
    s.put("x", dataset(4));
    CHECK_THROWS_AS(s.get<float>("x"), ndshm::dtype_mismatch);
    objects_util::write_file(dir / "junk.npy", {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13});
    CHECK_THROWS_AS(s.get<double>("junk"), ndshm::format_error);
    objects_util::write_file(dir / "file", {1});
    CHECK_THROWS_AS(store(dir / "file"), ndshm::error);
    CHECK_THROWS_AS(store(""), ndshm::error);
}

TEST_CASE("a segment or load lock of another user under a store name is refused, never waited on",
          "[store][security][multiprocess]")
{
    temp_dir dir("store");
    store s(dir.path());
    s.put("x", dataset(4));
    const std::string name = s.get<double>("x").name();
    s.close(); // the name is free again; now another user takes it
    for (const std::string& planted : {name + ".lock", name}) {
        const auto made = test_util::run_child([&] {
            if (!test_util::become_nobody()) {
                return 2;
            }
            const int fd = ::shm_open(("/" + planted).c_str(), O_RDWR | O_CREAT | O_EXCL, 0666);
            return fd >= 0 ? 0 : 1;
        });
        if (made.code == 2) {
            WARN("no user nobody: skipped");
            return;
        }
        REQUIRE(made.ok());
        CHECK_THROWS_AS(s.get<double>("x"), ndshm::permission_denied);
        ::shm_unlink(("/" + planted).c_str());
    }
    CHECK((s.get<double>("x").view() == dataset(4)));
}
