#include <ndshm/error.hpp>

#include <catch2/catch.hpp>

#include <cerrno>
#include <string>

TEST_CASE("every ndshm exception derives from ndshm::error and carries its code", "[error]")
{
    try {
        ndshm::detail::raise<ndshm::not_found>("attach", "seg", "no such segment", "check the name",
                                               ndshm::detail::errno_code(ENOENT));
        FAIL("raise returned");
    } catch (const ndshm::error& e) {
        CHECK(std::string(e.what()) == "ndshm: attach 'seg': no such segment; check the name");
        CHECK(e.code() == std::errc::no_such_file_or_directory);
        CHECK(dynamic_cast<const ndshm::not_found*>(&e) != nullptr);
    }
}

TEST_CASE("raise_errno picks the exception type from errno and names the fix", "[error]")
{
    const auto kind_of = [](int err) -> std::string {
        try {
            ndshm::detail::raise_errno("create", "seg", err, "shm_open");
        } catch (const ndshm::not_found&) {
            return "not_found";
        } catch (const ndshm::already_exists&) {
            return "already_exists";
        } catch (const ndshm::permission_denied&) {
            return "permission_denied";
        } catch (const ndshm::out_of_space& e) {
            CHECK(std::string(e.what()).find("shm-size") != std::string::npos);
            return "out_of_space";
        } catch (const ndshm::error& e) {
            CHECK(e.code().value() == err);
            return "error";
        }
        return "none";
    };
    CHECK(kind_of(ENOENT) == "not_found");
    CHECK(kind_of(EEXIST) == "already_exists");
    CHECK(kind_of(EACCES) == "permission_denied");
    CHECK(kind_of(EPERM) == "permission_denied");
    CHECK(kind_of(ENOSPC) == "out_of_space");
    CHECK(kind_of(EMFILE) == "error");
    CHECK(kind_of(EIO) == "error");
}
