/// @file detail/inspect_users.hpp
/// Which processes have a file open or mapped: a walk over every /proc/PID/fd and /proc/PID/maps that
/// says when it could not see everything (then "nobody" must not be concluded). What `ndshm gc` needs
/// before it removes a segment that names no creator, and what `users` of inspect() reports.
#ifndef NDSHM_DETAIL_INSPECT_USERS_HPP
#define NDSHM_DETAIL_INSPECT_USERS_HPP

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#ifndef _WIN32
#include <sys/sysmacros.h>
#endif

#include "config.hpp"
#include "directory.hpp"
#include "liveness.hpp"
#include "sys.hpp"

namespace ndshm::detail {

/// True if the process `pid`, whose /proc entries this user may not read, could have this user's files
/// open: its effective or file-system uid (/proc/PID/status, readable by everyone) is this user's, or
/// that cannot be read.
NDSHM_DECL bool may_be_this_users(const std::string& base);

/// For each file (device, inode), the pids of the processes that have it open or mapped, from every
/// /proc/PID/fd and /proc/PID/maps. Returns an empty string if that walk saw everything it needed,
/// else why the answer is incomplete (then `users` holds the processes that were seen, and must not
/// be taken to mean "nobody else"): /proc cannot be listed, or an entry of a process that could hold
/// this user's files cannot be read (EMFILE, ENOMEM, EACCES for a process of this user that is not
/// dumpable, ...). Processes that end meanwhile, and processes of other users (whose entries only root
/// may read; they cannot open this user's private segments) are passed over, and so is this process's
/// descriptor `own_fd`.
NDSHM_DECL std::string processes_using(const std::vector<std::pair<std::uint64_t, std::uint64_t>>& files,
                                       std::vector<std::vector<std::int64_t>>& users, int own_fd = -1);

} // namespace ndshm::detail

#if NDSHM_DEFINITIONS
namespace ndshm::detail {

bool may_be_this_users(const std::string& base)
{
    std::string status;
    if (read_proc_file((base + "/status").c_str(), status, 65536) != 0) {
        return true;
    }
    const std::size_t at = status.find("\nUid:");
    unsigned long real = 0, effective = 0, saved = 0, fs = 0;
    if (at == std::string::npos ||
        std::sscanf(status.c_str() + at + 5, "%lu %lu %lu %lu", &real, &effective, &saved, &fs) != 4) {
        return true;
    }
    const unsigned long me = current_uid();
    return effective == me || fs == me;
}

std::string processes_using(const std::vector<std::pair<std::uint64_t, std::uint64_t>>& files,
                            std::vector<std::vector<std::int64_t>>& users, int own_fd)
{
#ifdef _WIN32
    // Windows has no /proc to walk, and no call that lists the processes that map a file: the answer is
    // "unknown", so gc keeps what it would remove only on that evidence (unfinished segments without a
    // trailer), and says why.
    (void)own_fd;
    users.assign(files.size(), {});
    return "Windows cannot list the processes that have a file open or mapped";
#else
    const std::int64_t me = current_pid();
    users.assign(files.size(), {});
    std::map<std::pair<std::uint64_t, std::uint64_t>, std::size_t> index;
    for (std::size_t i = 0; i < files.size(); ++i) {
        index.emplace(files[i], i);
    }
    const auto failed = [](const std::string& what, int err) {
        return "cannot read " + what + ": " + std::generic_category().message(err);
    };
    std::vector<std::int64_t> pids;
    {
        dir_guard proc("/proc");
        if (proc.get() == nullptr) {
            return failed("/proc", errno);
        }
        for (;;) {
            int err = 0;
            const dirent* e = proc.next(err);
            if (e == nullptr) {
                if (err != 0) {
                    return failed("/proc", err);
                }
                break;
            }
            char* end = nullptr;
            const long pid = std::strtol(e->d_name, &end, 10);
            if (pid > 0 && end != nullptr && *end == '\0') {
                pids.push_back(pid);
            }
        }
    }
    std::string incomplete; // the first reason the walk missed something
    const auto missed = [&](std::string why) {
        if (!why.empty() && incomplete.empty()) {
            incomplete = std::move(why);
        }
    };
    for (const std::int64_t pid : pids) {
        std::vector<bool> found(files.size(), false);
        const auto mark = [&](std::uint64_t dev, std::uint64_t ino) {
            const auto it = index.find({dev, ino});
            if (it != index.end() && !found[it->second]) {
                found[it->second] = true;
                users[it->second].push_back(pid);
            }
        };
        const std::string base = "/proc/" + std::to_string(pid);
        // An error reading a process's entries: it ended (skip it), it belongs to another user (skip
        // it), or the answer is unknown.
        const auto unreadable = [&](const std::string& what, int err) -> std::string {
            if (err == ENOENT || err == ESRCH || ((err == EACCES || err == EPERM) && !may_be_this_users(base))) {
                return {};
            }
            return failed(base + "/" + what, err);
        };
        std::string why;
        {
            dir_guard fds((base + "/fd").c_str());
            if (fds.get() == nullptr) {
                missed(unreadable("fd", errno));
                continue;
            }
            for (;;) {
                int err = 0;
                const dirent* e = fds.next(err);
                if (e == nullptr) {
                    if (err != 0) {
                        why = unreadable("fd", err);
                    }
                    break;
                }
                if (e->d_name[0] == '.' || (pid == me && own_fd >= 0 && std::to_string(own_fd) == e->d_name)) {
                    continue; // the caller's own descriptor of the file (see gc) is not a user
                }
                struct stat st {};
                if (retry_eintr([&] { return sys().fstatat(dir_fd(fds.get()), e->d_name, &st, 0); }) == 0) {
                    mark(static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino));
                } else if (errno != ENOENT) { // ENOENT: closed meanwhile
                    why = unreadable(std::string("fd/") + e->d_name, errno);
                    if (!why.empty()) {
                        break;
                    }
                }
            }
        }
        missed(std::move(why));
        std::string maps;
        if (const int err = read_proc_file((base + "/maps").c_str(), maps); err != 0) {
            missed(unreadable("maps", err));
            continue;
        }
        for (std::size_t pos = 0; pos < maps.size();) {
            std::size_t eol = maps.find('\n', pos);
            if (eol == std::string::npos) {
                eol = maps.size();
            }
            // start-end perms offset major:minor inode [path]
            const std::string line = maps.substr(pos, std::min<std::size_t>(eol - pos, 256));
            unsigned maj = 0, min = 0;
            unsigned long long ino = 0;
            if (std::sscanf(line.c_str(), "%*s %*s %*s %x:%x %llu", &maj, &min, &ino) == 3 && ino != 0) {
                mark(static_cast<std::uint64_t>(::makedev(maj, min)), ino);
            }
            pos = eol + 1;
        }
    }
    return incomplete;
#endif
}

} // namespace ndshm::detail
#endif // NDSHM_DEFINITIONS

#endif
