/// @file detail/sys_win32_futex.hpp
/// FUTEX_WAIT and FUTEX_WAKE on Windows (see detail/sys_win32.hpp): WaitOnAddress only works inside one
/// process, so a futex word in a shared mapping is named by its file's identity and offset, and its
/// waiters sleep on a named semaphore of that name and count themselves in a named counter.
#ifndef NDSHM_DETAIL_SYS_WIN32_FUTEX_HPP
#define NDSHM_DETAIL_SYS_WIN32_FUTEX_HPP

#include "sys_win32_mapping.hpp"
#include "sys_win32_posix.hpp" // windows.h
#include "sys_win32_security.hpp"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <mutex>
#include <string>
#include <unordered_map>

namespace ndshm::detail::sys_win32 {

/// The named objects behind one futex word: a semaphore its waiters sleep on and a shared count of them.
struct futex_objects {
    HANDLE semaphore = nullptr;
    HANDLE counter_section = nullptr;
    volatile LONG* waiters = nullptr;
};

struct futex_table {
    std::mutex mutex;
    std::unordered_map<std::string, futex_objects> objects; // kept open for the life of the process
};
inline futex_table& futexes()
{
    static futex_table t;
    return t;
}

/// The name of the word at `word`: its file and offset if it lies in a mapped view, else this process
/// and its address (private memory).
inline std::wstring futex_name(const std::uint32_t* word)
{
    const auto a = reinterpret_cast<std::uintptr_t>(word);
    char buf[96];
    {
        std::lock_guard<std::mutex> g(views().mutex);
        auto& v = views().views;
        auto it = v.upper_bound(a);
        if (it != v.begin()) {
            --it;
            if (a - it->first < it->second.size && !it->second.anonymous) {
                std::snprintf(buf, sizeof buf, "Local\\ndshm_fx_%llx_%llx_%llx",
                              static_cast<unsigned long long>(it->second.volume),
                              static_cast<unsigned long long>(it->second.index),
                              static_cast<unsigned long long>(it->second.offset + (a - it->first)));
                return std::wstring(buf, buf + std::strlen(buf));
            }
        }
    }
    std::snprintf(buf, sizeof buf, "Local\\ndshm_fx_p%lu_%llx", static_cast<unsigned long>(::GetCurrentProcessId()),
                  static_cast<unsigned long long>(a));
    return std::wstring(buf, buf + std::strlen(buf));
}

/// The objects of `name`: created if `create`, else opened if some process created them. Returns
/// nullptr (errno set) if they do not exist and `create` is false, or cannot be made.
inline futex_objects* futex_lookup(const std::wstring& name, bool create)
{
    const std::string key(name.begin(), name.end());
    std::lock_guard<std::mutex> g(futexes().mutex);
    auto it = futexes().objects.find(key);
    if (it != futexes().objects.end()) {
        return &it->second;
    }
    futex_objects o;
    const std::wstring count_name = name + L"_n";
    if (create) {
        owner_only_security sec;
        o.semaphore = ::CreateSemaphoreW(sec.get(), 0, LONG_MAX, name.c_str());
        if (o.semaphore != nullptr) {
            o.counter_section = ::CreateFileMappingW(INVALID_HANDLE_VALUE, sec.get(), PAGE_READWRITE, 0, 4096,
                                                     count_name.c_str());
        }
    } else {
        o.semaphore = ::OpenSemaphoreW(SEMAPHORE_MODIFY_STATE | SYNCHRONIZE, FALSE, name.c_str());
        if (o.semaphore != nullptr) {
            o.counter_section = ::OpenFileMappingW(FILE_MAP_READ | FILE_MAP_WRITE, FALSE, count_name.c_str());
        }
    }
    if (o.counter_section != nullptr) {
        o.waiters = static_cast<volatile LONG*>(
            ::MapViewOfFile(o.counter_section, FILE_MAP_READ | FILE_MAP_WRITE, 0, 0, 4096));
    }
    if (o.waiters == nullptr) {
        const int e = errno_of_win32(::GetLastError());
        if (o.counter_section != nullptr) {
            ::CloseHandle(o.counter_section);
        }
        if (o.semaphore != nullptr) {
            ::CloseHandle(o.semaphore);
        }
        errno = e;
        return nullptr;
    }
    return &futexes().objects.emplace(key, o).first->second;
}

/// FUTEX_WAIT and FUTEX_WAKE on a word that other processes map too (see detail/sys_win32.hpp).
inline long futex(std::uint32_t* word, int op, std::uint32_t val, const struct timespec* timeout)
{
    const std::wstring name = futex_name(word);
    if (op == FUTEX_WAKE) {
        ::MemoryBarrier(); // the caller's store to the word before the read of the waiter count
        futex_objects* o = futex_lookup(name, false);
        if (o == nullptr) {
            return 0; // nobody ever waited on this word
        }
        const LONG waiting = *o->waiters;
        const LONG n = std::min<LONG>(waiting, static_cast<LONG>(std::min<std::uint32_t>(val, LONG_MAX)));
        if (n > 0) {
            (void)::ReleaseSemaphore(o->semaphore, n, nullptr);
        }
        return n > 0 ? n : 0;
    }
    if (op != FUTEX_WAIT) {
        return fail_errno(ENOSYS);
    }
    futex_objects* o = futex_lookup(name, true);
    if (o == nullptr) {
        return -1;
    }
    ::InterlockedIncrement(o->waiters); // a full barrier: counted before the word is read
    if (__atomic_load_n(word, __ATOMIC_SEQ_CST) != val) {
        ::InterlockedDecrement(o->waiters);
        return fail_errno(EAGAIN);
    }
    DWORD ms = INFINITE;
    if (timeout != nullptr) {
        const std::uint64_t ns = static_cast<std::uint64_t>(timeout->tv_sec) * 1000000000u +
                                 static_cast<std::uint64_t>(timeout->tv_nsec);
        const std::uint64_t m = (ns + 999999u) / 1000000u;
        ms = m >= INFINITE ? INFINITE - 1 : static_cast<DWORD>(m);
    }
    const DWORD r = ::WaitForSingleObject(o->semaphore, ms);
    ::InterlockedDecrement(o->waiters);
    if (r == WAIT_OBJECT_0) {
        return 0;
    }
    return fail_errno(r == WAIT_TIMEOUT ? ETIMEDOUT : EINVAL);
}

} // namespace ndshm::detail::sys_win32

#endif
