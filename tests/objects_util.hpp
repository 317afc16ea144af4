// Helpers for the tests of composite objects, files and the store: temporary directories, raw
// segments, reading files, patching the system-call table, and running NumPy.
#ifndef NDSHM_TESTS_OBJECTS_UTIL_HPP
#define NDSHM_TESTS_OBJECTS_UTIL_HPP

#include <ndshm/detail/sys.hpp>

#include "sys_counter.hpp"
#include "test_util.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#ifndef NDSHM_TEST_PYTHON
#define NDSHM_TEST_PYTHON "/usr/bin/python3"
#endif
#ifndef NDSHM_TEST_SOURCE_DIR
#define NDSHM_TEST_SOURCE_DIR "."
#endif

namespace objects_util {

/// A fresh directory under /tmp, removed with everything in it at scope end.
class temp_dir {
public:
    explicit temp_dir(const std::string& tag = "dir")
    {
        std::string tmpl = "/tmp/ndshm_test_" + tag + "_XXXXXX";
        if (::mkdtemp(tmpl.data()) == nullptr) {
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
    std::string operator/(const std::string& file) const { return m_path + "/" + file; }
    /// Names of the entries in the directory, sorted.
    std::vector<std::string> entries() const
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

using test_util::sys_patch;

inline std::string unique_name(const std::string& tag)
{
    static int counter = 0;
    return "ndshm_test_" + tag + "_" + std::to_string(::getpid()) + "_" + std::to_string(++counter);
}

/// A POSIX shm segment holding exactly `bytes`, removed at scope end.
struct raw_segment {
    std::string name;
    raw_segment(const std::vector<unsigned char>& bytes, const std::string& tag = "obj") : name(unique_name(tag))
    {
        const int fd = ::shm_open(("/" + name).c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
        REQUIRE(fd >= 0);
        REQUIRE(::write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()));
        ::close(fd);
    }
    raw_segment(const raw_segment&) = delete;
    raw_segment& operator=(const raw_segment&) = delete;
    ~raw_segment() { ::shm_unlink(("/" + name).c_str()); }
};

inline std::vector<unsigned char> read_file(const std::string& path)
{
    std::ifstream f(path, std::ios::binary);
    return std::vector<unsigned char>(std::istreambuf_iterator<char>(f), {});
}

inline void write_file(const std::string& path, const std::vector<unsigned char>& bytes)
{
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

/// Lines of /proc/self/maps that mention `what` (a segment name or a file path).
inline int mappings_of(const std::string& what)
{
    std::ifstream maps("/proc/self/maps");
    int n = 0;
    for (std::string line; std::getline(maps, line);) {
        n += line.find(what) != std::string::npos ? 1 : 0;
    }
    return n;
}

/// Runs tests/python/objects_npy.py with the test suite's python and returns its exit status.
inline test_util::exit_status numpy(const std::vector<std::string>& args)
{
    std::vector<std::string> argv{NDSHM_TEST_PYTHON, std::string(NDSHM_TEST_SOURCE_DIR) + "/python/objects_npy.py"};
    argv.insert(argv.end(), args.begin(), args.end());
    return test_util::spawn_wait(argv);
}

} // namespace objects_util

#endif
