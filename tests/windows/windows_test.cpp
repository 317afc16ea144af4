// ndshm on Win32: segments, objects, files, the store, the lock, the queue and the channel, each in
// one process and across two. The second process is this program relaunched with CreateProcess as
// `ndshm_windows_tests --peer ROLE ARGS...`; the processes synchronise on the library's own blocking
// calls (a pop, a receive, a lock) and on the peer's exit, never on sleeps.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <ndshm/all.hpp> // every area that exists on Windows (all but the pool)

#include <xtensor/xbuilder.hpp>
#include <xtensor/xmath.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

using ndshm::shared_ndarray;

namespace {

/// Starts this program as `--peer role args...`. A failed CreateProcess is tried again a few times
/// (under wine, right after wineboot, it has failed once in CI) before the test fails with its error.
HANDLE start_peer(const std::vector<std::string>& args)
{
    wchar_t exe[MAX_PATH + 1];
    const DWORD n = ::GetModuleFileNameW(nullptr, exe, MAX_PATH + 1);
    if (n == 0 || n > MAX_PATH) {
        throw std::runtime_error("GetModuleFileName failed");
    }
    std::wstring cmd = L"\"" + std::wstring(exe, n) + L"\" --peer";
    for (const auto& a : args) {
        cmd += L" \"" + std::wstring(a.begin(), a.end()) + L"\"";
    }
    std::fflush(nullptr);
    DWORD err = 0;
    for (int attempt = 0; attempt < 5; ++attempt) {
        STARTUPINFOW si{};
        si.cb = sizeof si;
        PROCESS_INFORMATION pi{};
        std::wstring line = cmd; // CreateProcessW may write into its command line
        if (::CreateProcessW(exe, &line[0], nullptr, nullptr, FALSE, 0, nullptr, nullptr, &si, &pi)) {
            ::CloseHandle(pi.hThread);
            return pi.hProcess;
        }
        err = ::GetLastError();
        std::fprintf(stderr, "CreateProcess of the peer failed with error %lu (attempt %d)\n",
                     static_cast<unsigned long>(err), attempt + 1);
        ::Sleep(200);
    }
    throw std::runtime_error("CreateProcess failed: error " + std::to_string(err));
}

/// Waits for the process and returns its exit code.
int wait_peer(HANDLE process)
{
    ::WaitForSingleObject(process, INFINITE);
    DWORD code = 255;
    ::GetExitCodeProcess(process, &code);
    ::CloseHandle(process);
    return static_cast<int>(code);
}

/// Runs this program as `--peer role args...` and returns its exit code.
int run_peer(const std::vector<std::string>& args) { return wait_peer(start_peer(args)); }

/// A peer started now and waited for later (to run beside the test's own blocking calls).
class peer_process {
public:
    explicit peer_process(const std::vector<std::string>& args) : m_process(start_peer(args)) {}
    peer_process(const peer_process&) = delete;
    peer_process& operator=(const peer_process&) = delete;
    ~peer_process()
    {
        if (m_process != nullptr) {
            ::TerminateProcess(m_process, 1);
            ::CloseHandle(m_process);
        }
    }
    int wait() { return wait_peer(std::exchange(m_process, nullptr)); }

private:
    HANDLE m_process = nullptr;
};

/// A fresh directory under %TEMP%, removed with what it holds at scope exit.
struct temp_dir {
    std::filesystem::path path;
    temp_dir()
    {
        unsigned char rnd[8];
        ndshm::detail::random_bytes(rnd, sizeof rnd, "temp_dir");
        char hex[17];
        for (int i = 0; i < 8; ++i) {
            std::snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
        }
        path = std::filesystem::temp_directory_path() / (std::string("ndshm_test_") + hex);
        std::filesystem::create_directories(path);
    }
    ~temp_dir()
    {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    std::string str() const { return path.string(); }
};

/// The segment files (names starting with ndshm_) in the default segment directory.
std::vector<std::string> default_dir_segments()
{
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(ndshm::detail::default_segment_dir(), ec)) {
        const std::string n = e.path().filename().string();
        if (n.rfind("ndshm_", 0) == 0) {
            out.push_back(n);
        }
    }
    return out;
}

bool segment_exists(const std::string& name)
{
    return std::filesystem::exists(std::filesystem::path(ndshm::detail::default_segment_dir()) / name);
}

struct frame {
    std::string label;
    std::map<std::string, std::vector<int>> tags;
    shared_ndarray<float> pixels;
    xt::xarray<double> field;
    template <class A>
    void serialize(A& ar)
    {
        ar(label, tags, pixels, field);
    }
};

} // namespace

// ---- segments ----------------------------------------------------------------------------------

TEST_CASE("create, attach, write through either handle, and the last owner removes the file", "[segment]")
{
    std::string name;
    {
        auto a = shared_ndarray<double>::create({100, 3});
        name = a.name();
        CHECK(name.rfind("ndshm_", 0) == 0);
        CHECK(name.size() <= 30);
        CHECK(segment_exists(name));
        a.view() = xt::arange<double>(300.0).reshape({100, 3});
        auto b = shared_ndarray<double>::attach(name);
        CHECK(b.shape() == ndshm::shape_type{100, 3});
        CHECK(b(99, 2) == 299.0);
        b(0, 0) = -1.0;
        CHECK(a(0, 0) == -1.0);
        CHECK(xt::sum(a.view())() == Approx(299.0 * 300.0 / 2 - 1.0));
    }
    CHECK_FALSE(segment_exists(name));
    CHECK_THROWS_AS(shared_ndarray<double>::attach(name), ndshm::not_found);
}

TEST_CASE("a segment is a valid .npy file in the segment directory", "[segment]")
{
    auto a = shared_ndarray<std::int16_t>::from_array(xt::xarray<std::int16_t>{{1, 2, 3}, {4, 5, 6}});
    std::ifstream in(std::filesystem::path(ndshm::detail::default_segment_dir()) / a.name(), std::ios::binary);
    std::string head(4096, '\0');
    in.read(&head[0], 4096);
    REQUIRE(in);
    CHECK(head.compare(0, 6, "\x93NUMPY") == 0);
    CHECK(head.find("'descr': '<i2', 'fortran_order': False, 'shape': (2, 3), }") != std::string::npos);
    std::int16_t first = 0;
    in.read(reinterpret_cast<char*>(&first), sizeof first);
    CHECK(first == 1);
}

TEST_CASE("errors map to the ndshm exception family", "[segment][errors]")
{
    ndshm::options opt;
    opt.name = "ndshm_win_test_exclusive";
    auto a = shared_ndarray<float>::create({4}, opt);
    CHECK_THROWS_AS(shared_ndarray<float>::create({4}, opt), ndshm::already_exists); // ERROR_FILE_EXISTS
    CHECK_THROWS_AS(shared_ndarray<double>::attach(a.name()), ndshm::dtype_mismatch);
    CHECK_THROWS_AS(shared_ndarray<float>::attach("ndshm_win_test_missing"), ndshm::not_found);
    CHECK_THROWS_AS(ndshm::attach_any("bad/name"), ndshm::error);
    temp_dir dir;
    ndshm::options in_missing_dir;
    in_missing_dir.directory = (dir.path / "no" / "such" / "dir").string();
    CHECK_THROWS_AS(shared_ndarray<float>::create({4}, in_missing_dir), ndshm::not_found); // ERROR_PATH_NOT_FOUND
    try {
        (void)shared_ndarray<float>::create({4}, opt);
        FAIL("no exception");
    } catch (const ndshm::already_exists& e) {
        CHECK(std::string(e.what()).find("ndshm_win_test_exclusive") != std::string::npos);
        CHECK(e.code() == std::errc::file_exists);
    }
}

TEST_CASE("a segment file grants access to its creator only, and another user's file is refused", "[segment][security]")
{
    auto a = shared_ndarray<double>::create({8});
    const std::wstring path = (std::filesystem::path(ndshm::detail::default_segment_dir()) / a.name()).wstring();
    PACL dacl = nullptr;
    PSID owner = nullptr;
    PSECURITY_DESCRIPTOR sd = nullptr;
    REQUIRE(::GetNamedSecurityInfoW(path.c_str(), SE_FILE_OBJECT,
                                    DACL_SECURITY_INFORMATION | OWNER_SECURITY_INFORMATION, &owner, nullptr, &dacl,
                                    nullptr, &sd) == ERROR_SUCCESS);
    const auto& me = ndshm::detail::current_user_sid();
    REQUIRE_FALSE(me.empty());
    CHECK(owner != nullptr);
    CHECK(::EqualSid(owner, const_cast<unsigned char*>(me.data())));
    // One entry: full access for the creating user (the equivalent of mode 0600).
    // Access for the creating user only (the equivalent of mode 0600): an allowed entry for that user,
    // and no other entry but LocalSystem's, which wine adds (and which has every access on Windows
    // anyway). No Everyone, Users or Authenticated Users.
    REQUIRE(dacl != nullptr);
    bool user_allowed = false;
    for (DWORD i = 0; i < dacl->AceCount; ++i) {
        void* ace = nullptr;
        REQUIRE(::GetAce(dacl, i, &ace));
        const auto* allowed = static_cast<const ACCESS_ALLOWED_ACE*>(ace);
        REQUIRE(allowed->Header.AceType == ACCESS_ALLOWED_ACE_TYPE);
        PSID sid = const_cast<DWORD*>(&allowed->SidStart);
        LPWSTR text = nullptr;
        REQUIRE(::ConvertSidToStringSidW(sid, &text));
        const std::wstring who = text;
        ::LocalFree(text);
        INFO("entry " << i << " allows " << std::string(who.begin(), who.end()));
        if (::EqualSid(sid, const_cast<unsigned char*>(me.data()))) {
            user_allowed = (allowed->Mask & (FILE_GENERIC_READ | FILE_GENERIC_WRITE)) ==
                           (FILE_GENERIC_READ | FILE_GENERIC_WRITE);
        } else {
            CHECK(who == L"S-1-5-18"); // LocalSystem
        }
    }
    CHECK(user_allowed);
    ::LocalFree(sd);

    // A file whose owner SID is not this user's (fstat reports another tag for it) is refused.
    auto& table = ndshm::detail::sys();
    const auto saved = table.fstat;
    table.fstat = [](int fd, ndshm::detail::stat* st) {
        const int r = ndshm::detail::sys_win32::fstat(fd, st);
        st->st_uid ^= 0x40000000u;
        return r;
    };
    try {
        (void)shared_ndarray<double>::attach(a.name());
        table.fstat = saved;
        FAIL("attach of another user's file did not throw");
    } catch (const ndshm::permission_denied& e) {
        table.fstat = saved;
        CHECK(std::string(e.what()).find("allow_other_users") != std::string::npos);
    }
}

TEST_CASE("a segment larger than the free disk space is out_of_space at create, and leaves nothing",
          "[segment][errors]")
{
    const auto before = default_dir_segments();
    // 8 TiB: more than any test machine's disk has free; the space is reserved at create.
    try {
        (void)shared_ndarray<double>::create({std::size_t(1) << 40});
        FAIL("create did not throw");
    } catch (const ndshm::out_of_space& e) {
        // The message names the real directory, and no /dev/shm or Docker advice.
        const std::string what = e.what();
        CHECK(what.find(ndshm::detail::default_segment_dir()) != std::string::npos);
        CHECK(what.find("/dev/shm") == std::string::npos);
        CHECK(what.find("docker") == std::string::npos);
    }
    CHECK(default_dir_segments() == before);
}

TEST_CASE("ERROR_DISK_FULL or ERROR_COMMITMENT_LIMIT while reserving is out_of_space, through the sys() hook",
          "[segment][errors][fault]")
{
    using ndshm::detail::errno_of_win32;
    CHECK(errno_of_win32(ERROR_DISK_FULL) == ENOSPC);
    CHECK(errno_of_win32(ERROR_COMMITMENT_LIMIT) == ENOSPC);
    CHECK(errno_of_win32(ERROR_ALREADY_EXISTS) == EEXIST);
    CHECK(errno_of_win32(ERROR_ACCESS_DENIED) == EACCES);
    CHECK(errno_of_win32(ERROR_FILE_NOT_FOUND) == ENOENT);
    auto& table = ndshm::detail::sys();
    const auto saved = table.posix_fallocate;
    static DWORD injected = 0;
    table.posix_fallocate = [](int, ndshm::detail::off_t, ndshm::detail::off_t) { return errno_of_win32(injected); };
    const auto before = default_dir_segments();
    for (const DWORD e : {DWORD(ERROR_DISK_FULL), DWORD(ERROR_COMMITMENT_LIMIT)}) {
        injected = e;
        CHECK_THROWS_AS(shared_ndarray<double>::create({1000}), ndshm::out_of_space);
        CHECK(default_dir_segments() == before); // the half-made file is removed
        CHECK_THROWS_WITH(shared_ndarray<double>::create({1000}),
                          !Catch::Contains("/dev/shm") && !Catch::Contains("docker"));
    }
    injected = ERROR_ACCESS_DENIED;
    CHECK_THROWS_AS(shared_ndarray<double>::create({1000}), ndshm::permission_denied);
    table.posix_fallocate = saved;
    CHECK(shared_ndarray<double>::create({1000}).size() == 1000);
}

TEST_CASE("read-only attach, attach_any, persist and unlink", "[segment]")
{
    std::string name;
    {
        auto a = shared_ndarray<std::int32_t>::from_array(xt::arange<std::int32_t>(10));
        name = a.name();
        ndshm::options ro;
        ro.read_only = true;
        auto r = shared_ndarray<const std::int32_t>::attach(name, ro);
        CHECK(r(9) == 9);
        auto any = ndshm::attach_any(name);
        CHECK(any.dtype() == ndshm::dtype::int32);
        CHECK(any.shape() == ndshm::shape_type{10});
        CHECK(any.as<std::int32_t>()(3) == 3);
        a.persist();
    }
    REQUIRE(segment_exists(name)); // persisted: the name outlives its creator's handles
    {
        auto b = shared_ndarray<std::int32_t>::attach(name);
        CHECK(b(5) == 5);
        ndshm::unlink(name); // while mapped: the name goes at once, the mapping stays valid
        CHECK_FALSE(segment_exists(name));
        CHECK(b(5) == 5);
        b(5) = 50;
        CHECK(b(5) == 50);
    }
    CHECK_THROWS_AS(ndshm::unlink(name), ndshm::not_found);
    // The file moved aside while it was mapped is gone once unmapped.
    std::size_t aside = 0;
    for (const auto& e : std::filesystem::directory_iterator(ndshm::detail::default_segment_dir())) {
        aside += e.path().filename().string().find(name) != std::string::npos;
    }
    CHECK(aside == 0);
}

TEST_CASE("a name can be created again at once after its segment was unlinked while mapped", "[segment]")
{
    ndshm::options opt;
    opt.name = "ndshm_win_test_recreate";
    auto a = shared_ndarray<double>::create({8}, opt);
    a(0) = 1.0;
    ndshm::unlink(opt.name);
    auto b = shared_ndarray<double>::create({8}, opt);
    b(0) = 2.0;
    CHECK(a(0) == 1.0); // two different files
    CHECK(shared_ndarray<double>::attach(opt.name)(0) == 2.0);
}

TEST_CASE("free_session removes what this process created, the directory backend keeps Linux semantics", "[segment]")
{
    temp_dir dir;
    ndshm::options opt;
    opt.directory = dir.str();
    auto a = shared_ndarray<double>::create({16}, opt);
    auto b = shared_ndarray<double>::create({16});
    CHECK(std::filesystem::exists(dir.path / a.name()));
    CHECK(shared_ndarray<double>::attach(a.name(), opt).size() == 16);
    const std::size_t freed = ndshm::free_session();
    CHECK(freed >= 2);
    CHECK_FALSE(std::filesystem::exists(dir.path / a.name()));
    CHECK_FALSE(segment_exists(b.name()));
    a(3) = 3.0; // the mappings stay valid
    CHECK(a(3) == 3.0);
}

TEST_CASE("free_all removes every segment of this user in the default directory and the backend", "[segment]")
{
    temp_dir dir;
    ndshm::options opt;
    opt.directory = dir.str();
    auto a = shared_ndarray<double>::create({16}, opt);
    auto b = shared_ndarray<double>::create({16});
    b.persist();
    std::ofstream(dir.path / "notes.txt") << "not a segment";
    CHECK(ndshm::free_all(opt) >= 2);
    CHECK_FALSE(std::filesystem::exists(dir.path / a.name()));
    CHECK_FALSE(segment_exists(b.name()));                  // persisted names go too
    CHECK(std::filesystem::exists(dir.path / "notes.txt")); // only ndshm_ names are touched
    CHECK(default_dir_segments().empty());
    b(1) = 1.0; // the mappings stay valid
    CHECK(b(1) == 1.0);
}

TEST_CASE("another process attaches by name, reads and writes the same memory", "[segment][multiprocess]")
{
    auto a = shared_ndarray<double>::from_array(xt::arange<double>(1000.0));
    CHECK(run_peer({"attach", a.name()}) == 0);
    CHECK(a(0) == 42.0); // written by the peer
    CHECK(a(999) == 999.0);
}

TEST_CASE("a segment persisted by a process that exited stays until unlinked", "[segment][multiprocess]")
{
    const std::string name = "ndshm_win_test_persisted";
    CHECK(run_peer({"persist", name}) == 0);
    REQUIRE(segment_exists(name));
    auto a = shared_ndarray<std::uint8_t>::attach(name);
    CHECK(a(6) == 6);
    ndshm::unlink(name);
}

TEST_CASE("ls and gc: a segment whose creator died unpersisted is garbage, a persisted one is kept",
          "[segment][gc][multiprocess]")
{
    temp_dir dir;
    ndshm::options opt;
    opt.directory = dir.str();
    CHECK(run_peer({"die-owning", dir.str(), "ndshm_win_test_orphan"}) == 0);
    CHECK(run_peer({"persist-in", dir.str(), "ndshm_win_test_kept"}) == 0);
    auto mine = shared_ndarray<double>::create({4}, opt); // alive creator: kept
    const auto listed = ndshm::list_segments(opt);
    REQUIRE(listed.size() == 3);
    std::map<std::string, ndshm::segment_info> by_name;
    for (const auto& s : listed) {
        by_name[s.name] = s;
    }
    CHECK(by_name.at("ndshm_win_test_orphan").creator == ndshm::creator_status::dead);
    CHECK(by_name.at("ndshm_win_test_kept").persisted());
    CHECK(by_name.at(mine.name()).creator == ndshm::creator_status::alive);
    {
        auto held = shared_ndarray<std::int16_t>::attach("ndshm_win_test_orphan", opt); // gc removes it anyway
        const auto removed = ndshm::gc(opt);
        REQUIRE(removed.size() == 1);
        CHECK(removed[0].segment.name == "ndshm_win_test_orphan");
        CHECK(removed[0].removed);
        CHECK(held(2) == 2); // the mapping stays valid, as on Linux
    }
    CHECK_THROWS_AS(shared_ndarray<std::int16_t>::attach("ndshm_win_test_orphan", opt), ndshm::not_found);
    CHECK(ndshm::list_segments(opt).size() == 2);
    ndshm::unlink("ndshm_win_test_kept", opt);
}

// ---- composite objects, files, the store ---------------------------------------------------------

TEST_CASE("a composite object is one segment; its arrays load as zero-copy views", "[object]")
{
    frame f;
    f.label = "frame 7";
    f.tags["a"] = {1, 2, 3};
    f.pixels = shared_ndarray<float>::from_array(xt::arange<float>(12.0f).reshape({3, 4}));
    f.field = xt::ones<double>({2, 2});
    auto h = ndshm::share(f);
    frame g = ndshm::load<frame>(h.name());
    CHECK(g.label == "frame 7");
    CHECK(g.tags["a"] == std::vector<int>{1, 2, 3});
    CHECK(g.pixels(2, 3) == 11.0f);
    CHECK(xt::sum(g.field)() == 4.0);
    frame g2 = ndshm::load<frame>(h.name());
    CHECK(g2.pixels.data() != nullptr);
    g.pixels(0, 0) = 5.0f;
    CHECK(g2.pixels(0, 0) == 5.0f); // both views of one segment
    CHECK(run_peer({"object", h.name()}) == 0);
}

TEST_CASE(".npy files: save, load into shared memory, map rows read-only", "[file]")
{
    temp_dir dir;
    const std::string path = (dir.path / "a.npy").string();
    const xt::xarray<double> want = xt::arange<double>(40.0).reshape({10, 4});
    ndshm::save_npy(path, want);
    auto a = ndshm::read_npy<double>(path);
    CHECK(a.shape() == ndshm::shape_type{10, 4});
    CHECK(a(9, 3) == 39.0);
    auto rows = ndshm::map_npy<double>(path, ndshm::row_range{2, 5});
    CHECK(rows.shape() == ndshm::shape_type{3, 4});
    CHECK(rows(0, 0) == 8.0);
    auto part = ndshm::read_npy<double>(path, ndshm::row_range{7, 10});
    CHECK(part(2, 3) == 39.0);
    CHECK_THROWS_AS(ndshm::read_npy<float>(path), ndshm::dtype_mismatch);
    CHECK_THROWS_AS(ndshm::read_npy<double>((dir.path / "missing.npy").string()), ndshm::not_found);
    // An object file round trip.
    frame f;
    f.label = "saved";
    f.pixels = shared_ndarray<float>::from_array(xt::arange<float>(6.0f));
    ndshm::save_object(path + ".obj", f);
    frame g = ndshm::read_object<frame>(path + ".obj");
    CHECK(g.label == "saved");
    CHECK(g.pixels(5) == 5.0f);
}

TEST_CASE("the store loads an array once per machine and attaches it everywhere else", "[store]")
{
    temp_dir dir;
    {
        ndshm::store s(dir.str());
        s.put("x", xt::arange<double>(20.0).reshape({5, 4}));
        s.append("x", xt::ones<double>({2, 4}));
        auto x = s.get<double>("x");
        CHECK(x.shape() == ndshm::shape_type{7, 4});
        CHECK(x(6, 0) == 1.0);
        ndshm::store t(dir.str());
        auto y = t.get<double>("x");
        CHECK(y.data() != nullptr);
        CHECK(y(4, 3) == 19.0);
        CHECK(t.stats().attached == 1);
        CHECK(run_peer({"store", dir.str()}) == 0);
        CHECK_THROWS_AS(s.get<double>("nope"), ndshm::not_found);
    }
}

// ---- bad input ---------------------------------------------------------------------------------------

TEST_CASE("corrupt or foreign segment files are refused with format_error, never trusted", "[bad-input]")
{
    temp_dir dir;
    ndshm::options opt;
    opt.directory = dir.str();
    const auto write = [&](const std::string& name, const std::string& bytes) {
        std::ofstream out(dir.path / name, std::ios::binary);
        out << bytes;
    };
    write("ndshm_short", "\x93NUM");
    CHECK_THROWS_AS(ndshm::attach_any("ndshm_short", opt), ndshm::format_error);
    std::string header = std::string("\x93NUMPY\x01\x00", 8);
    std::string dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000, ), }";
    dict.resize(4096 - 10 - 1, ' ');
    dict += '\n';
    header += std::string(1, static_cast<char>(dict.size() & 0xff)) +
              std::string(1, static_cast<char>(dict.size() >> 8));
    write("ndshm_truncated", header + dict + std::string(64, '\0')); // says 8 MB, has 64 bytes
    CHECK_THROWS_AS(shared_ndarray<double>::attach("ndshm_truncated", opt), ndshm::format_error);
    std::string bad = header + dict;
    bad.replace(bad.find("<f8"), 3, ">f8");
    write("ndshm_big_endian", bad + std::string(8000000, '\0'));
    CHECK_THROWS_AS(ndshm::attach_any("ndshm_big_endian", opt), ndshm::format_error);
    // A NumPy-made .npy (no trailer) attaches as a foreign segment.
    ndshm::save_npy((dir.path / "ndshm_numpy").string(), xt::xarray<double>{1.0, 2.0});
    CHECK(shared_ndarray<double>::attach("ndshm_numpy", opt)(1) == 2.0);
}

// ---- the lock, the queue, the channel ------------------------------------------------------------

TEST_CASE("array_lock: a holder that dies hands the lock on, and the next holder is told", "[lock][multiprocess]")
{
    auto a = shared_ndarray<int>::create({4});
    ndshm::array_lock lock(a);
    {
        std::lock_guard<ndshm::array_lock> g(lock);
        CHECK_FALSE(lock.previous_owner_died());
    }
    CHECK(run_peer({"lock-and-die", a.name()}) == 0); // the peer exits while it holds the lock
    lock.lock();
    CHECK(lock.previous_owner_died());
    CHECK(a(0) == 7); // what the peer wrote before it died
    lock.unlock();
}

TEST_CASE("array_lock excludes another process; try_lock and timed waits return on time", "[lock][multiprocess]")
{
    auto a = shared_ndarray<std::int64_t>::create({1});
    ndshm::array_lock lock(a);
    lock.lock();
    peer_process p({"lock-count", a.name(), "200"});
    // The peer blocks in lock(); meanwhile this process works under the lock.
    for (int i = 0; i < 100; ++i) {
        a(0) += 1;
    }
    lock.unlock(); // wakes the peer through the named semaphore of the lock word
    CHECK(p.wait() == 0);
    lock.lock();
    CHECK(a(0) == 100 + 200);
    peer_process q({"lock-hold", a.name()});
    lock.unlock();
    // The peer takes it and exits holding it; wait for its death, then a try_lock takes it over.
    CHECK(q.wait() == 0);
    CHECK(lock.try_lock_for(std::chrono::seconds(5)));
    CHECK(lock.previous_owner_died());
    lock.unlock();
}

TEST_CASE("a queue moves arrays between processes in order, and a pop blocks until a push", "[queue][multiprocess]")
{
    auto q = ndshm::array_queue::create(4);
    peer_process p({"queue-producer", q.name(), "20"});
    for (int i = 0; i < 20; ++i) {
        auto a = q.pop<double>(); // blocks: the producer is slower to start than this pop
        REQUIRE(a.shape() == ndshm::shape_type{1000});
        CHECK(a(0) == double(i));
        CHECK(a(999) == double(i) + 999.0);
    }
    CHECK(p.wait() == 0);
    CHECK(q.try_pop<double>().empty());
    CHECK(q.pop<double>(std::chrono::milliseconds(20)).empty());
}

TEST_CASE("a full queue makes a push wait until another process pops", "[queue][multiprocess]")
{
    auto q = ndshm::array_queue::create(2);
    peer_process p({"queue-consumer", q.name(), "30"});
    for (int i = 0; i < 30; ++i) {
        auto a = shared_ndarray<std::int32_t>::create({64});
        a.view() = i;
        q.push(std::move(a));
    }
    CHECK(p.wait() == 0);
}

TEST_CASE("a channel streams frames to another process through two slots", "[channel][multiprocess]")
{
    auto ch = ndshm::channel<float>::create({256}, 2);
    peer_process p({"channel-consumer", ch.name(), "100"});
    for (int i = 0; i < 100; ++i) {
        auto s = ch.loan(); // waits for a slot the consumer releases
        s.view() = static_cast<float>(i);
        ch.publish(std::move(s));
    }
    CHECK(p.wait() == 0);
    ch.close();
}

// ---- uninterruptible -------------------------------------------------------------------------------

// Wine cannot raise console control events (GenerateConsoleCtrlEvent fails without a real console), so
// these tests call the handler the guard installs the way Windows does: on a thread of its own.
TEST_CASE("a console event inside the guard is passed on when the last guard ends", "[uninterruptible]")
{
    std::atomic<int> handler_result{-1};
    std::atomic<bool> guard_ended{false};
    std::atomic<bool> passed_on_after_guard{false};
    std::thread windows_thread;
    {
        ndshm::uninterruptible outer;
        {
            ndshm::uninterruptible inner;
            CHECK_FALSE(ndshm::uninterruptible::signal_pending());
            windows_thread = std::thread([&] {
                const BOOL r = ndshm::detail::deferring_console_handler(CTRL_C_EVENT);
                passed_on_after_guard = guard_ended.load();
                handler_result = r;
            });
            while (!ndshm::uninterruptible::signal_pending()) {
                std::this_thread::yield(); // waits for the handler's state, set in the other thread
            }
        } // the inner guard ends: the event stays deferred
        CHECK(ndshm::uninterruptible::signal_pending());
        CHECK(handler_result == -1);
        guard_ended = true;
    } // the last guard ends: its destructor returns once the handler has passed the event on
    windows_thread.join();
    CHECK(handler_result == FALSE); // on to the next handler: the default one ends the process
    CHECK(passed_on_after_guard);
    CHECK_FALSE(ndshm::uninterruptible::signal_pending());
}

TEST_CASE("outside guards a console event is passed on at once", "[uninterruptible]")
{
    {
        ndshm::uninterruptible g;
    } // installs the handler
    CHECK(ndshm::detail::deferring_console_handler(CTRL_BREAK_EVENT) == FALSE);
    CHECK_FALSE(ndshm::uninterruptible::signal_pending());
}

// ---- the peer --------------------------------------------------------------------------------------

namespace {

int peer_main(int argc, char** argv)
{
    const std::string role = argv[2];
    const std::string arg = argc > 3 ? argv[3] : "";
    const int count = argc > 4 ? std::atoi(argv[4]) : 0;
    if (role == "attach") {
        auto a = shared_ndarray<double>::attach(arg);
        if (a.size() != 1000 || a(999) != 999.0) {
            return 1;
        }
        a(0) = 42.0;
        return 0;
    }
    if (role == "persist") {
        ndshm::options opt;
        opt.name = arg;
        auto a = shared_ndarray<std::uint8_t>::from_array(xt::arange<std::uint8_t>(10), opt);
        a.persist();
        return 0;
    }
    if (role == "die-owning" || role == "persist-in") {
        ndshm::options opt;
        opt.directory = arg;
        opt.name = argv[4];
        auto a = shared_ndarray<std::int16_t>::from_array(xt::arange<std::int16_t>(8), opt);
        if (role == "persist-in") {
            a.persist();
            return 0;
        }
        std::fflush(nullptr);
        ::ExitProcess(0); // dies owning it: no destructor unlinks it
    }
    if (role == "object") {
        frame g = ndshm::load<frame>(arg);
        return g.label == "frame 7" && g.pixels(0, 0) == 5.0f && g.pixels(2, 3) == 11.0f ? 0 : 1;
    }
    if (role == "store") {
        ndshm::store s(arg);
        auto x = s.get<double>("x");
        return x(4, 3) == 19.0 && s.stats().attached == 1 ? 0 : 1;
    }
    if (role == "lock-and-die") {
        auto a = shared_ndarray<int>::attach(arg);
        ndshm::array_lock lock(a);
        lock.lock();
        a(0) = 7;
        std::fflush(nullptr);
        ::ExitProcess(0); // dies holding the lock: no destructor, no unlock
    }
    if (role == "lock-hold") {
        auto a = shared_ndarray<std::int64_t>::attach(arg);
        ndshm::array_lock lock(a);
        lock.lock(); // waits until the test process unlocks
        std::fflush(nullptr);
        ::ExitProcess(0);
    }
    if (role == "lock-count") {
        auto a = shared_ndarray<std::int64_t>::attach(arg);
        ndshm::array_lock lock(a);
        for (int i = 0; i < count; ++i) {
            std::lock_guard<ndshm::array_lock> g(lock);
            a(0) += 1;
        }
        return 0;
    }
    if (role == "queue-producer") {
        auto q = ndshm::array_queue::attach(arg);
        for (int i = 0; i < count; ++i) {
            auto a = shared_ndarray<double>::from_array(xt::arange<double>(1000.0) + double(i));
            q.push(std::move(a));
        }
        return 0;
    }
    if (role == "queue-consumer") {
        auto q = ndshm::array_queue::attach(arg);
        for (int i = 0; i < count; ++i) {
            auto a = q.pop<std::int32_t>();
            if (a.size() != 64 || a(63) != i) {
                return 1;
            }
        }
        return 0;
    }
    if (role == "channel-consumer") {
        auto ch = ndshm::channel<float>::attach(arg);
        for (int i = 0; i < count; ++i) {
            auto r = ch.receive();
            if (r.empty() || r.array()(0) != float(i) || r.array()(255) != float(i)) {
                return 1;
            }
            r.release();
        }
        return 0;
    }
    std::fprintf(stderr, "unknown peer role %s\n", role.c_str());
    return 2;
}

} // namespace

int main(int argc, char** argv)
{
    if (argc >= 3 && std::strcmp(argv[1], "--peer") == 0) {
        try {
            return peer_main(argc, argv);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "peer %s: %s\n", argv[2], e.what());
            return 99;
        }
    }
    const auto before = default_dir_segments();
    const int failed = Catch::Session().run(argc, argv);
    // Nothing may be left behind in the segment directory.
    const auto after = default_dir_segments();
    for (const auto& n : after) {
        if (std::find(before.begin(), before.end(), n) == before.end()) {
            std::fprintf(stderr, "left behind: %s\n", n.c_str());
            return failed + 1;
        }
    }
    return failed;
}
