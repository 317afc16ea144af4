/// @file detail/sys_win32_security.hpp
/// Who owns what on Windows: the current user's SID and the uid that stands for it, the owner-only
/// security descriptor that segment files, their directory and the futex objects are created with (the
/// equivalent of mode 0600), and the owner check of a file, which compares SIDs.
#ifndef NDSHM_DETAIL_SYS_WIN32_SECURITY_HPP
#define NDSHM_DETAIL_SYS_WIN32_SECURITY_HPP

#include "sys_win32_posix.hpp" // windows.h

#include <aclapi.h>
#include <sddl.h>

#include <cstdint>
#include <string>
#include <vector>

namespace ndshm::detail {

/// The token user's SID of this process (a copy), or empty if it cannot be read.
inline const std::vector<unsigned char>& current_user_sid() noexcept
{
    static const std::vector<unsigned char> sid = [] {
        std::vector<unsigned char> out;
        HANDLE token = nullptr;
        if (!::OpenProcessToken(::GetCurrentProcess(), TOKEN_QUERY, &token)) {
            return out;
        }
        DWORD len = 0;
        (void)::GetTokenInformation(token, TokenUser, nullptr, 0, &len);
        std::vector<unsigned char> buf(len);
        if (len != 0 && ::GetTokenInformation(token, TokenUser, buf.data(), len, &len)) {
            PSID s = reinterpret_cast<TOKEN_USER*>(buf.data())->User.Sid;
            const DWORD sl = ::GetLengthSid(s);
            out.assign(static_cast<unsigned char*>(s), static_cast<unsigned char*>(s) + sl);
        }
        ::CloseHandle(token);
        return out;
    }();
    return sid;
}

/// The current user's tag, the stand-in for the uid: a 31-bit hash (FNV-1a) of the user's SID, never 0.
/// It names the user in generated names and trailers; ownership itself is checked by SID.
inline uid_t current_uid() noexcept
{
    static const uid_t tag = [] {
        std::uint32_t h = 2166136261u;
        for (unsigned char c : current_user_sid()) {
            h = (h ^ c) * 16777619u;
        }
        h &= 0x7fffffffu;
        return h == 0 ? 1u : h;
    }();
    return tag;
}

/// A security descriptor that grants full access to the current user only (protected: nothing is
/// inherited from the directory), for segment files, their directory and the futex objects.
class owner_only_security {
public:
    owner_only_security() noexcept
    {
        const auto& sid = current_user_sid();
        if (sid.empty()) {
            return;
        }
        LPWSTR text = nullptr;
        if (!::ConvertSidToStringSidW(const_cast<unsigned char*>(sid.data()), &text)) {
            return;
        }
        const std::wstring sddl = std::wstring(L"D:P(A;;GA;;;") + text + L")";
        ::LocalFree(text);
        if (::ConvertStringSecurityDescriptorToSecurityDescriptorW(sddl.c_str(), SDDL_REVISION_1, &m_sd, nullptr)) {
            m_sa.nLength = sizeof m_sa;
            m_sa.lpSecurityDescriptor = m_sd;
            m_sa.bInheritHandle = FALSE;
        }
    }
    owner_only_security(const owner_only_security&) = delete;
    owner_only_security& operator=(const owner_only_security&) = delete;
    ~owner_only_security()
    {
        if (m_sd != nullptr) {
            ::LocalFree(m_sd);
        }
    }
    /// The attributes to pass, or nullptr if no descriptor could be built (then creation fails closed
    /// in create_file: a segment is never made with the directory's inherited rights).
    SECURITY_ATTRIBUTES* get() noexcept { return m_sd != nullptr ? &m_sa : nullptr; }

private:
    PSECURITY_DESCRIPTOR m_sd = nullptr;
    SECURITY_ATTRIBUTES m_sa{};
};

namespace sys_win32 {

/// True if the owner SID of the object behind `h` is the current user's SID.
inline bool owned_by_current_user(HANDLE h) noexcept
{
    PSID owner = nullptr;
    PSECURITY_DESCRIPTOR sd = nullptr;
    if (::GetSecurityInfo(h, SE_FILE_OBJECT, OWNER_SECURITY_INFORMATION, &owner, nullptr, nullptr, nullptr, &sd) !=
        ERROR_SUCCESS) {
        return false;
    }
    const auto& me = current_user_sid();
    const bool same = owner != nullptr && !me.empty() && ::IsValidSid(owner) &&
                      ::EqualSid(owner, const_cast<unsigned char*>(me.data()));
    ::LocalFree(sd);
    return same;
}

} // namespace sys_win32
} // namespace ndshm::detail

#endif
