// Helpers for the tests of shared_dict and shared_list: a private directory backend (so a test can count
// every segment it made, whatever other tests do in /dev/shm at the same time), the table of a container
// mapped raw (to damage it or to watch it), and the arrays the concurrent tests write and check.
#ifndef NDSHM_TESTS_COLLECTION_UTIL_HPP
#define NDSHM_TESTS_COLLECTION_UTIL_HPP

#include <ndshm/detail/collection_format.hpp>
#include <ndshm/inspect.hpp>
#include <ndshm/detail/sys.hpp>
#include <ndshm/options.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include <ndshm/shared_ndarray.hpp>

namespace collection_util {

/// A fresh directory for the directory backend, removed with everything in it at scope end.
class temp_dir {
public:
    temp_dir()
    {
        char tmpl[] = "/tmp/ndshm_test_coll_XXXXXX";
        if (::mkdtemp(tmpl) == nullptr) {
            throw std::runtime_error("mkdtemp failed");
        }
        m_path = tmpl;
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    ~temp_dir()
    {
        std::error_code ec;
        std::filesystem::remove_all(m_path, ec);
    }
    const std::string& path() const { return m_path; }
    /// Where the segment `name` of this backend is.
    std::string path_of(const std::string& name) const { return m_path + "/" + name; }
    ndshm::options opts() const
    {
        ndshm::options o;
        o.directory = m_path;
        return o;
    }
    /// Names of the files in the directory, sorted.
    std::vector<std::string> files() const
    {
        std::vector<std::string> names;
        for (const auto& e : std::filesystem::directory_iterator(m_path)) {
            names.push_back(e.path().filename().string());
        }
        std::sort(names.begin(), names.end());
        return names;
    }

private:
    std::string m_path;
};

/// The data of a container's segment (its table), mapped read-write straight from the file.
class raw_table {
public:
    /// `path`: /dev/shm/NAME, or DIR/NAME in a directory backend.
    explicit raw_table(const std::string& path)
    {
        const int fd = ::open(path.c_str(), O_RDWR);
        if (fd < 0) {
            throw std::runtime_error("open " + path + " failed");
        }
        struct stat st {};
        ::fstat(fd, &st);
        m_size = static_cast<std::size_t>(st.st_size);
        void* p = ::mmap(nullptr, m_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        ::close(fd);
        if (p == MAP_FAILED) {
            throw std::runtime_error("mmap " + path + " failed");
        }
        m_base = static_cast<unsigned char*>(p);
        m_layout = ndshm::detail::make_collection_layout(control().kind, static_cast<std::size_t>(control().capacity));
    }
    raw_table(const raw_table&) = delete;
    raw_table& operator=(const raw_table&) = delete;
    ~raw_table() { ::munmap(m_base, m_size); }

    unsigned char* data() { return m_base + 4096; }
    ndshm::detail::collection_control& control()
    {
        return *reinterpret_cast<ndshm::detail::collection_control*>(data());
    }
    const ndshm::detail::collection_layout& layout() const { return m_layout; }
    ndshm::detail::collection_record& record(std::size_t r)
    {
        return *reinterpret_cast<ndshm::detail::collection_record*>(data() + m_layout.records_off +
                                                                    r * m_layout.record_bytes);
    }
    /// The current order buffer.
    std::uint32_t* order()
    {
        const std::uint64_t v = __atomic_load_n(&control().view, __ATOMIC_ACQUIRE);
        return reinterpret_cast<std::uint32_t*>(data() + m_layout.order_off +
                                                ndshm::detail::view_buffer(v) * m_layout.capacity * 4);
    }
    std::uint32_t* index() { return reinterpret_cast<std::uint32_t*>(data() + m_layout.index_off); }
    std::uint64_t changes() { return __atomic_load_n(&control().changes, __ATOMIC_ACQUIRE); }
    std::uint64_t recoveries() { return __atomic_load_n(&control().recoveries, __ATOMIC_ACQUIRE); }

private:
    unsigned char* m_base = nullptr;
    std::size_t m_size = 0;
    ndshm::detail::collection_layout m_layout;
};

/// The array the concurrent tests store under a value `v`: v + 1 elements, every one equal to v. A
/// reader that sees any other array has seen a torn or mixed entry.
inline xt::xarray<std::int64_t> stamp(std::int64_t v)
{
    xt::xarray<std::int64_t> a = xt::xarray<std::int64_t>::from_shape({static_cast<std::size_t>(v % 1000) + 1});
    a.fill(v);
    return a;
}

/// True if `data` (n elements) is stamp(v) for some v.
inline bool is_stamp(const std::int64_t* data, std::size_t n)
{
    if (n == 0) {
        return false;
    }
    const std::int64_t v = data[0];
    if (v < 0 || static_cast<std::size_t>(v % 1000) + 1 != n) {
        return false;
    }
    return std::all_of(data, data + n, [&](std::int64_t x) { return x == v; });
}

/// Runs gc on `dir` after a writer was killed, and returns what it removed. A writer killed between
/// creating a segment's file and sizing it leaves an empty file without a trailer; gc removes such a file
/// only once it sees that no process has it open, which it cannot tell where /proc entries of other
/// users' processes are unreadable (a container without CAP_SYS_PTRACE, say): it keeps those and says
/// so. Every segment gc keeps must be such a file; the test, which knows that no process uses `dir`
/// any more, removes them.
inline std::size_t gc_after_kill(const temp_dir& dir)
{
    std::vector<ndshm::gc_entry> undecided;
    const std::size_t removed = ndshm::gc(dir.opts(), false, &undecided).size();
    for (const auto& e : undecided) {
        CHECK(e.segment.kind == ndshm::segment_kind::unfinished);
        CHECK_FALSE(e.segment.trailer);
        ::unlink(dir.path_of(e.segment.name).c_str());
    }
    return removed;
}

/// Makes the removal of a name (shm_unlink, unlinkat) kill the calling process with SIGKILL: a process
/// that removes an entry's segment right after a change was committed dies there, in the middle of
/// the change, holding the lock. Only for forked children, which never restore it.
inline void die_at_next_unlink()
{
    auto& t = ndshm::detail::sys();
    t.shm_unlink = [](const char*) -> int {
        ::kill(::getpid(), SIGKILL);
        return -1;
    };
    t.unlinkat = [](int, const char*, int) -> int {
        ::kill(::getpid(), SIGKILL);
        return -1;
    };
}

} // namespace collection_util

#endif
