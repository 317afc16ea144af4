// Sparse segments: a writer that extends a file with ftruncate (NumPy's open_memmap does) leaves the
// data as a hole, and on a full tmpfs the first touch of a hole kills the process with SIGBUS. Attach
// (writable and read-only, arrays and objects), map_npy, object files and the store must reserve the holes or refuse
// with out_of_space. Each case runs in a child with a private mount namespace and a small tmpfs of its
// own over /dev/shm (and over a directory for files), so that filling it disturbs nothing else.
#include <ndshm/all.hpp>

#include "test_util.hpp"
#include "tools_util.hpp"

#include <catch2/catch.hpp>
#include <xtensor/xbuilder.hpp>

#include <fcntl.h>
#include <linux/falloc.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

using ndshm::shared_ndarray;

namespace {

constexpr std::size_t elements = 256 * 1024; // 2 MiB of float64
constexpr std::size_t data_bytes = elements * sizeof(double);

/// Runs `body` in a child with a private mount namespace in which /dev/shm and `dir` are fresh tmpfs
/// mounts of `mib` MiB each. Returns the body's exit code (77: the namespace or the mounts failed).
int with_small_tmpfs(const std::string& dir, int mib, const std::function<int()>& body)
{
    const auto st = test_util::run_child([&] {
        const std::string size = "size=" + std::to_string(mib) + "m,mode=1777";
        if (::unshare(CLONE_NEWNS) != 0 || ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
            ::mount("tmpfs", "/dev/shm", "tmpfs", 0, size.c_str()) != 0 ||
            ::mount("tmpfs", dir.c_str(), "tmpfs", 0, size.c_str()) != 0) {
            std::perror("sparse test: namespace or tmpfs");
            return 77;
        }
        return body();
    });
    return st.exited ? st.code : 128 + st.signal;
}

/// Writes a .npy of `elements` float64 the way NumPy's open_memmap does: the header, then ftruncate
/// to the full size, so that every data page is a hole. `path` is /dev/shm/NAME or a file.
bool write_sparse_npy(const std::string& path, mode_t mode = 0600)
{
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) {
        return false;
    }
    std::vector<unsigned char> head(4096);
    bool ok = ndshm::detail::write_npy_header(head.data(), 4096, ndshm::dtype::float64, {elements}, false);
    std::memcpy(head.data(), ndshm::detail::npy_magic, sizeof ndshm::detail::npy_magic);
    ok = ok && ::pwrite(fd, head.data(), head.size(), 0) == static_cast<ssize_t>(head.size()) &&
         ::ftruncate(fd, static_cast<off_t>(4096 + data_bytes)) == 0 && ::fchmod(fd, mode) == 0;
    ::close(fd);
    return ok;
}

/// Fills the file system of `dir` until it is full; returns the filler's path.
std::string fill_up(const std::string& dir)
{
    const std::string path = dir + "/filler";
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    std::vector<char> chunk(64 * 1024, 'x');
    while (fd >= 0 && ::write(fd, chunk.data(), chunk.size()) > 0) {
    }
    for (std::size_t n = chunk.size() / 2; fd >= 0 && n >= 1; n /= 2) { // the last bytes, smaller chunks
        while (::write(fd, chunk.data(), n) > 0) {
        }
    }
    if (fd >= 0) {
        ::close(fd);
    }
    return path;
}

/// Bytes of `path` that have memory (or disk blocks) behind them.
std::uint64_t allocated(const std::string& path)
{
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 ? static_cast<std::uint64_t>(st.st_blocks) * 512 : 0;
}

/// What touching the holes of `path` directly does: the signal that ended a child that read them.
int touch_signal(const std::string& path)
{
    const auto st = test_util::run_child([&] {
        ::signal(SIGBUS, SIG_DFL); // a sanitizer's handler would turn the signal into an exit code
        const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        void* p = ::mmap(nullptr, 4096 + data_bytes, PROT_READ, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) {
            return 1;
        }
        double sum = 0;
        for (std::size_t i = 0; i < elements; i += 512) {
            sum += static_cast<const double*>(p)[512 + i];
        }
        return sum == 0 ? 0 : 2;
    });
    return st.signal;
}

template <class F>
std::string out_of_space_message(F&& f)
{
    try {
        f();
    } catch (const ndshm::out_of_space& e) {
        return e.what();
    } catch (const std::exception& e) {
        return std::string("another exception: ") + e.what();
    }
    return "no exception";
}

/// Turns the middle of the file at `path` (whole pages, about half of it) into a hole, as if its writer
/// had skipped those bytes.
bool punch_hole(const std::string& path)
{
    const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    struct stat st {};
    const bool ok = fd >= 0 && ::fstat(fd, &st) == 0 &&
                    ::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, st.st_size / 4 / 4096 * 4096,
                                st.st_size / 2 / 4096 * 4096) == 0;
    if (fd >= 0) {
        ::close(fd);
    }
    return ok;
}

/// A composite object with one array member of `elements` float64.
struct sparse_object {
    std::string label;
    xt::xarray<double> values;
    template <class A>
    void serialize(A& ar)
    {
        ar(label, values);
    }
};

#define SPARSE_EXPECT(cond)                                                                                            \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            std::fprintf(stderr, "sparse test, line %d: failed: %s\n", __LINE__, #cond);                               \
            return __LINE__;                                                                                           \
        }                                                                                                              \
    } while (0)

} // namespace

TEST_CASE("attaching a sparse segment on a full /dev/shm is out_of_space, never a SIGBUS", "[sparse]")
{
    tools_util::temp_dir files;
    const int code = with_small_tmpfs(files.path, 8, [&] {
        SPARSE_EXPECT(write_sparse_npy("/dev/shm/ndshm_sparse"));
        SPARSE_EXPECT(write_sparse_npy("/dev/shm/ndshm_sparse_ro"));
        SPARSE_EXPECT(allocated("/dev/shm/ndshm_sparse") < data_bytes);
        const std::string filler = fill_up("/dev/shm");
        // The hazard is real: reading the holes directly now kills the reader.
        SPARSE_EXPECT(touch_signal("/dev/shm/ndshm_sparse") == SIGBUS);

        for (const std::string& what :
             {out_of_space_message([] { (void)shared_ndarray<double>::attach("ndshm_sparse"); }),
              out_of_space_message([] { (void)shared_ndarray<const double>::attach("ndshm_sparse_ro"); }),
              out_of_space_message([] { (void)ndshm::attach_any("ndshm_sparse"); })}) {
            std::fprintf(stderr, "%s\n", what.c_str());
            SPARSE_EXPECT(what.find("ndshm: attach 'ndshm_sparse") == 0);
            SPARSE_EXPECT(what.find("sparse") != std::string::npos);
            SPARSE_EXPECT(what.find("SIGBUS") != std::string::npos);
            SPARSE_EXPECT(what.find("bytes free") != std::string::npos);
            SPARSE_EXPECT(what.find("--shm-size") != std::string::npos);
        }
        SPARSE_EXPECT(allocated("/dev/shm/ndshm_sparse") < data_bytes); // a failed reservation leaves no half

        // With room again, attach reserves the holes, writable or read-only, and every element reads 0.
        SPARSE_EXPECT(::unlink(filler.c_str()) == 0);
        auto a = shared_ndarray<double>::attach("ndshm_sparse");
        SPARSE_EXPECT(allocated("/dev/shm/ndshm_sparse") >= 4096 + data_bytes);
        auto r = shared_ndarray<const double>::attach("ndshm_sparse_ro");
        SPARSE_EXPECT(allocated("/dev/shm/ndshm_sparse_ro") >= 4096 + data_bytes);
        (void)fill_up("/dev/shm");
        double sum = 0;
        for (std::size_t i = 0; i < elements; ++i) {
            sum += a(i) + r(i);
        }
        a(elements - 1) = 1.5; // reserved pages take writes on a full file system too
        SPARSE_EXPECT(sum == 0 && a(elements - 1) == 1.5);
        return 0;
    });
    CHECK(code == 0);
}

TEST_CASE("a read-only handle that cannot reserve a sparse segment refuses it and names the fix", "[sparse]")
{
    tools_util::temp_dir files;
    const int code = with_small_tmpfs(files.path, 8, [&] {
        // A segment this user may only read (another user's writer, say): it cannot be reserved.
        const auto st = test_util::run_child([] {
            if (!test_util::become_nobody()) {
                return 10;
            }
            SPARSE_EXPECT(write_sparse_npy("/dev/shm/ndshm_sparse_0400", 0400));
            const std::string what = out_of_space_message(
                [] { (void)shared_ndarray<const double>::attach("ndshm_sparse_0400"); });
            std::fprintf(stderr, "%s\n", what.c_str());
            SPARSE_EXPECT(what.find("cannot reserve") != std::string::npos);
            SPARSE_EXPECT(what.find("Permission denied") != std::string::npos);
            SPARSE_EXPECT(what.find("open_memmap") != std::string::npos); // names who leaves holes, and the fix
            return 0;
        });
        return st.exited ? st.code : 128 + st.signal;
    });
    CHECK(code == 0);
}

TEST_CASE("map_npy and the directory backend refuse or reserve sparse files on a full tmpfs", "[sparse]")
{
    tools_util::temp_dir files;
    const int code = with_small_tmpfs(files.path, 8, [&] {
        const std::string npy = files / "sparse.npy";
        SPARSE_EXPECT(write_sparse_npy(npy));
        SPARSE_EXPECT(write_sparse_npy(files / "ndshm_sparse_dir"));
        std::string filler = fill_up(files.path);
        SPARSE_EXPECT(touch_signal(npy) == SIGBUS);
        const std::string mapped = out_of_space_message([&] { (void)ndshm::map_npy<double>(npy); });
        std::fprintf(stderr, "%s\n", mapped.c_str());
        SPARSE_EXPECT(mapped.find("sparse") != std::string::npos && mapped.find("read_npy") != std::string::npos);
        ndshm::options o;
        o.directory = files.path;
        const std::string attached = out_of_space_message(
            [&] { (void)shared_ndarray<double>::attach("ndshm_sparse_dir", o); });
        SPARSE_EXPECT(attached.find("sparse") != std::string::npos);

        SPARSE_EXPECT(::unlink(filler.c_str()) == 0);
        const auto m = ndshm::map_npy<double>(npy);
        SPARSE_EXPECT(allocated(npy) >= 4096 + data_bytes);
        filler = fill_up(files.path);
        double sum = 0;
        for (std::size_t i = 0; i < elements; ++i) {
            sum += m(i);
        }
        SPARSE_EXPECT(sum == 0);
        return 0;
    });
    CHECK(code == 0);
}

TEST_CASE("object files and the store on a full tmpfs are out_of_space or read, never a SIGBUS", "[sparse]")
{
    tools_util::temp_dir files;
    const int code = with_small_tmpfs(files.path, 8, [&] {
        // An object file with a hole in its array's data.
        const std::string obj_path = files / "object.ndshm";
        sparse_object in{"sparse", xt::ones<double>({elements})};
        ndshm::save_object(obj_path, in);
        SPARSE_EXPECT(punch_hole(obj_path));
        // A store whose .npy file has a hole in its data (the store reads files, it never maps them).
        ndshm::store st(files / "store");
        st.put("values", xt::xarray<double>(xt::ones<double>({elements})));
        SPARSE_EXPECT(punch_hole(st.path("values")));

        std::string filler = fill_up(files.path);
        std::string shm_filler = fill_up("/dev/shm");
        SPARSE_EXPECT(touch_signal(obj_path) == SIGBUS); // the hazard is real
        for (const std::string& what :
             {out_of_space_message([&] { (void)ndshm::read_object<sparse_object>(obj_path); }),
              out_of_space_message([&] { (void)ndshm::share_file(obj_path); })}) {
            std::fprintf(stderr, "%s\n", what.c_str());
            SPARSE_EXPECT(what.find("sparse") != std::string::npos);
            SPARSE_EXPECT(what.find(obj_path) != std::string::npos);
            SPARSE_EXPECT(what.find("save_object") != std::string::npos);
        }
        // The store needs room in /dev/shm for the dataset's one copy: a clear out_of_space without it.
        const std::string store_full = out_of_space_message([&] { (void)st.get<double>("values"); });
        std::fprintf(stderr, "%s\n", store_full.c_str());
        SPARSE_EXPECT(store_full.find("ndshm: ") == 0 && store_full.find("has 0 bytes free") != std::string::npos);

        // With room again: the object file's holes are reserved and read as zeros, the store loads.
        SPARSE_EXPECT(::unlink(filler.c_str()) == 0);
        SPARSE_EXPECT(::unlink(shm_filler.c_str()) == 0);
        const auto out = ndshm::read_object<sparse_object>(obj_path);
        SPARSE_EXPECT(out.label == "sparse" && out.values.size() == elements);
        const auto values = st.get<double>("values");
        filler = fill_up(files.path);
        shm_filler = fill_up("/dev/shm");
        double object_sum = 0;
        double store_sum = 0;
        for (std::size_t i = 0; i < elements; ++i) {
            object_sum += out.values(i);
            store_sum += values(i);
        }
        // Every element was 1 but those in the hole, which read 0.
        SPARSE_EXPECT(object_sum > 0 && object_sum < static_cast<double>(elements));
        SPARSE_EXPECT(store_sum > 0 && store_sum < static_cast<double>(elements));
        return 0;
    });
    CHECK(code == 0);
}
