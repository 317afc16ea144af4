/// @file detail/sys_win32_mapping.hpp
/// Mappings on Windows (see detail/sys_win32.hpp): mmap maps a view of a file mapping object over the
/// file and records the file's identity, by which a futex word in the view is named in every process;
/// munmap unmaps a whole view (and deletes the files an unlink moved aside that nobody maps any more);
/// madvise, mlock, munlock and msync; the page size.
#ifndef NDSHM_DETAIL_SYS_WIN32_MAPPING_HPP
#define NDSHM_DETAIL_SYS_WIN32_MAPPING_HPP

#include "sys_win32_files.hpp"
#include "sys_win32_posix.hpp" // windows.h

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>

namespace ndshm::detail {
namespace sys_win32 {

/// The views this process mapped, with their file's identity, so that a futex word in one can be named
/// in every process that maps the same file.
struct view_record {
    std::size_t size = 0;
    std::uint64_t volume = 0;
    std::uint64_t index = 0;
    std::uint64_t offset = 0; ///< of the returned address in the file
    void* base = nullptr;     ///< what MapViewOfFile or VirtualAlloc returned (the address may lie above it)
    bool anonymous = false;
};
struct view_table {
    std::mutex mutex;
    std::map<std::uintptr_t, view_record> views;
};
inline view_table& views()
{
    static view_table t;
    return t;
}

/// mmap(2): MAP_SHARED maps a view of the file (PAGE_READWRITE or PAGE_READONLY), MAP_PRIVATE a
/// copy-on-write view, MAP_ANONYMOUS committed private memory. An offset need only be page-aligned,
/// as on Linux: the view starts at the allocation granularity (64 KiB) below it.
inline void* mmap(void*, std::size_t n, int prot, int flags, int fd, off_t off)
{
    if (n == 0 || off < 0) {
        errno = EINVAL;
        return MAP_FAILED;
    }
    if ((flags & MAP_ANONYMOUS) != 0) {
        void* p = ::VirtualAlloc(nullptr, n, MEM_RESERVE | MEM_COMMIT,
                                 (prot & PROT_WRITE) != 0 ? PAGE_READWRITE : PAGE_READONLY);
        if (p == nullptr) {
            errno = ENOMEM;
            return MAP_FAILED;
        }
        std::lock_guard<std::mutex> g(views().mutex);
        views().views[reinterpret_cast<std::uintptr_t>(p)] = view_record{n, 0, 0, 0, p, true};
        return p;
    }
    const bool shared = (flags & MAP_SHARED) != 0;
    const HANDLE h = handle_of(fd);
    BY_HANDLE_FILE_INFORMATION fi{};
    if (!::GetFileInformationByHandle(h, &fi)) {
        fail_win32();
        return MAP_FAILED;
    }
    const bool writable = (prot & PROT_WRITE) != 0;
    const DWORD protect = !writable ? PAGE_READONLY : (shared ? PAGE_READWRITE : PAGE_WRITECOPY);
    HANDLE section = ::CreateFileMappingW(h, nullptr, protect, 0, 0, nullptr);
    if (section == nullptr) {
        const DWORD e = ::GetLastError();
        errno = e == ERROR_FILE_INVALID ? EINVAL : (e == ERROR_COMMITMENT_LIMIT ? ENOMEM : errno_of_win32(e));
        return MAP_FAILED;
    }
    SYSTEM_INFO si{};
    ::GetSystemInfo(&si);
    const auto o = static_cast<std::uint64_t>(off);
    const std::uint64_t skip = o % si.dwAllocationGranularity;
    const std::uint64_t at = o - skip;
    const DWORD access = !writable ? FILE_MAP_READ : (shared ? FILE_MAP_READ | FILE_MAP_WRITE : FILE_MAP_COPY);
    void* base = ::MapViewOfFile(section, access, static_cast<DWORD>(at >> 32), static_cast<DWORD>(at),
                                 static_cast<SIZE_T>(n + skip));
    const DWORD e = ::GetLastError();
    ::CloseHandle(section); // the view keeps the section alive
    if (base == nullptr) {
        errno = e == ERROR_COMMITMENT_LIMIT ? ENOMEM : errno_of_win32(e);
        return MAP_FAILED;
    }
    void* p = static_cast<unsigned char*>(base) + skip;
    std::lock_guard<std::mutex> g(views().mutex);
    views().views[reinterpret_cast<std::uintptr_t>(p)] = view_record{
        n, fi.dwVolumeSerialNumber, std::uint64_t(fi.nFileIndexHigh) << 32 | fi.nFileIndexLow, o, base, false};
    return p;
}

inline int munmap(void* p, std::size_t)
{
    view_record r;
    {
        std::lock_guard<std::mutex> g(views().mutex);
        const auto it = views().views.find(reinterpret_cast<std::uintptr_t>(p));
        if (it == views().views.end()) {
            return fail_errno(EINVAL); // only whole mappings are unmapped
        }
        r = it->second;
        views().views.erase(it);
    }
    if (r.anonymous) {
        return ::VirtualFree(r.base, 0, MEM_RELEASE) ? 0 : fail_win32();
    }
    if (!::UnmapViewOfFile(r.base)) {
        return fail_win32();
    }
    std::lock_guard<std::mutex> g(unlinked().mutex);
    if (!unlinked().paths.empty()) {
        delete_unlinked(unlinked().paths);
    }
    return 0;
}

/// Prefaulting advice: Windows faults pages in on demand and has no populate; space is reserved at
/// creation (posix_fallocate), so nothing is lost by taking the advice as given.
inline int madvise(void*, std::size_t, int) { return 0; }

/// mlock/munlock: VirtualLock/VirtualUnlock (the limit is the process's minimum working set size).
inline int mlock(const void* a, std::size_t n) { return ::VirtualLock(const_cast<void*>(a), n) ? 0 : fail_win32(); }
inline int munlock(const void* a, std::size_t n) { return ::VirtualUnlock(const_cast<void*>(a), n) ? 0 : fail_win32(); }
/// msync: FlushViewOfFile writes the view's changed pages to the file.
inline int msync(void* a, std::size_t n, int) { return ::FlushViewOfFile(a, n) ? 0 : fail_win32(); }

} // namespace sys_win32

/// The page size (the unit of mappings' offsets).
inline std::size_t page_size() noexcept
{
    SYSTEM_INFO si{};
    ::GetSystemInfo(&si);
    return si.dwPageSize;
}

} // namespace ndshm::detail

#endif
