/// @file detail/session.hpp
/// The session registry: the segments this process created and still owns, each with the identity of
/// the file it created. free_session() unlinks them; the last owning handle unlinks its own.
#ifndef NDSHM_DETAIL_SESSION_HPP
#define NDSHM_DETAIL_SESSION_HPP

#include <cerrno>
#include <map>
#include <mutex>
#include <utility>

#include "config.hpp"
#include "liveness.hpp"
#include "segment_location.hpp"

namespace ndshm::detail {

/// The segments this process created and still owns, each with the identity of the file it created
/// (so that it never removes a file someone else created under the same name later). A forked child
/// starts with an empty set: it inherits the parent's mappings but never its names.
class session_registry {
public:
    NDSHM_DECL void add(const location& l, file_id id);
    /// True if this process owned `l` as the file `id` (and now does not).
    NDSHM_DECL bool remove(const location& l, file_id id);
    /// Forgets `l` whatever file it was (the name itself was removed).
    NDSHM_DECL bool remove(const location& l);
    /// True if this process owns `l` as the file `id`.
    NDSHM_DECL bool contains(const location& l, file_id id);
    NDSHM_DECL std::map<location, file_id> take_all();

private:
    NDSHM_DECL void refresh();
    std::mutex m_mutex;
    pid_t m_pid = 0;
    std::map<location, file_id> m_owned;
};

NDSHM_DECL session_registry& session();

/// If this process owns `l` as the file `id`, gives that up and unlinks the name while it still names
/// that file (see unlink_if_same): what the owner's last handle does.
inline void unlink_if_owned(const location& l, file_id id)
{
    if (session().remove(l, id)) {
        (void)unlink_if_same(l, id);
    }
}

/// Removes the name `l` (see unlink_location), and this process's ownership of it once it is gone:
/// ownership goes with the name; a failed unlink leaves both, so the owning handle still removes it.
/// Returns 0 or the errno of the unlink (ENOENT: someone else removed it).
inline int unlink_name(const location& l)
{
    const int err = unlink_location(l);
    if (err == 0 || err == ENOENT) {
        (void)session().remove(l);
    }
    return err;
}

} // namespace ndshm::detail

#if NDSHM_DEFINITIONS
namespace ndshm::detail {

void session_registry::add(const location& l, file_id id)
{
    std::lock_guard<std::mutex> g(m_mutex);
    refresh();
    m_owned[l] = id;
}

bool session_registry::remove(const location& l, file_id id)
{
    std::lock_guard<std::mutex> g(m_mutex);
    refresh();
    const auto it = m_owned.find(l);
    if (it == m_owned.end() || it->second != id) {
        return false;
    }
    m_owned.erase(it);
    return true;
}

bool session_registry::remove(const location& l)
{
    std::lock_guard<std::mutex> g(m_mutex);
    refresh();
    return m_owned.erase(l) != 0;
}

bool session_registry::contains(const location& l, file_id id)
{
    std::lock_guard<std::mutex> g(m_mutex);
    refresh();
    const auto it = m_owned.find(l);
    return it != m_owned.end() && it->second == id;
}

std::map<location, file_id> session_registry::take_all()
{
    std::lock_guard<std::mutex> g(m_mutex);
    refresh();
    return std::exchange(m_owned, {});
}

void session_registry::refresh()
{
    const pid_t me = current_pid();
    if (m_pid != me) {
        m_owned.clear();
        m_pid = me;
    }
}

session_registry& session()
{
    static session_registry s;
    return s;
}

} // namespace ndshm::detail
#endif // NDSHM_DEFINITIONS

#endif
