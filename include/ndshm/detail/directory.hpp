/// @file detail/directory.hpp
/// Reading a directory through sys() (detail/sys.hpp): opening it, its entries one by one (EINTR
/// retried), and closing it. Listing segments and walking /proc read directories this way.
#ifndef NDSHM_DETAIL_DIRECTORY_HPP
#define NDSHM_DETAIL_DIRECTORY_HPP

#include <cerrno>

#include <dirent.h>

#include "config.hpp"
#include "sys.hpp"

namespace ndshm::detail {

/// An open directory stream, closed when the guard goes.
class dir_guard {
public:
    /// Opens the directory `path`, retrying EINTR; on failure, get() is null and errno says why.
    NDSHM_DECL explicit dir_guard(const char* path) noexcept;
    dir_guard(const dir_guard&) = delete;
    dir_guard& operator=(const dir_guard&) = delete;
    ~dir_guard()
    {
        if (m_dir != nullptr) {
            (void)sys().closedir(m_dir);
        }
    }
    DIR* get() const noexcept { return m_dir; }

    /// The next entry, retrying EINTR; nullptr at the end (`err` 0) or on an error (`err` its errno).
    NDSHM_DECL const dirent* next(int& err) noexcept;

private:
    DIR* m_dir = nullptr;
};

} // namespace ndshm::detail

#if NDSHM_DEFINITIONS
namespace ndshm::detail {

dir_guard::dir_guard(const char* path) noexcept
{
    do {
        m_dir = sys().opendir(path);
    } while (m_dir == nullptr && errno == EINTR);
}

const dirent* dir_guard::next(int& err) noexcept
{
    for (;;) {
        errno = 0;
        const dirent* e = sys().readdir(m_dir);
        if (e != nullptr) {
            err = 0;
            return e;
        }
        if (errno != EINTR) {
            err = errno;
            return nullptr;
        }
    }
}

} // namespace ndshm::detail
#endif // NDSHM_DEFINITIONS

#endif
