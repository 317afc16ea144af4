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
#ifdef _WIN32
            CHECK(std::string(e.what()).find("NDSHM_SHM_DIR") != std::string::npos);
#else
            CHECK(std::string(e.what()).find("shm-size") != std::string::npos);
#endif
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

TEST_CASE("ndshm::errc codes name the cause and compare with std::errc", "[error]")
{
    const std::error_code unfinished = ndshm::errc::unfinished;
    CHECK(unfinished.category() == ndshm::error_category());
    CHECK(std::string(unfinished.category().name()) == "ndshm");
    CHECK(unfinished.message() == "unfinished segment (not published by its creator)");
    CHECK(unfinished == std::errc::resource_unavailable_try_again);
    CHECK(unfinished == ndshm::errc::unfinished);
    CHECK(unfinished != ndshm::errc::corrupt_header);
    const std::error_code header = ndshm::errc::corrupt_header;
    CHECK(header.message() == "corrupt .npy header");
    CHECK(header == std::errc::illegal_byte_sequence);
    CHECK(std::error_code(ndshm::errc::unsupported_dtype) == std::errc::not_supported);
    CHECK(std::error_code(ndshm::errc::dtype_mismatch) == std::errc::invalid_argument);
    CHECK(std::error_code(ndshm::errc::rank_mismatch) == std::errc::invalid_argument);
    CHECK(std::error_code(ndshm::errc::mpi_failure).message() == "MPI operation failed");
    CHECK(std::error_code(ndshm::errc::mpi_failure) == std::errc::io_error);
    for (int v = 1; v <= static_cast<int>(ndshm::errc::mpi_failure); ++v) {
        const std::string m = std::error_code(v, ndshm::error_category()).message();
        CHECK_FALSE(m.empty());
        CHECK(m.find("unknown") == std::string::npos);
        CHECK(m.find("multibyte") == std::string::npos);
    }
    try {
        ndshm::detail::raise<ndshm::format_error>("attach", "seg", "bad", "", ndshm::errc::corrupt_header);
    } catch (const ndshm::error& e) {
        CHECK(e.code() == ndshm::errc::corrupt_header);
        CHECK(e.code().message() == "corrupt .npy header");
    }
}

TEST_CASE("human_bytes gives sizes in binary units", "[error]")
{
    using ndshm::detail::human_bytes;
    CHECK(human_bytes(0) == "0 bytes");
    CHECK(human_bytes(1) == "1 byte");
    CHECK(human_bytes(1023) == "1023 bytes");
    CHECK(human_bytes(1024) == "1.0 KiB");
    CHECK(human_bytes(1536) == "1.5 KiB");
    CHECK(human_bytes(8589938944ull) == "8.0 GiB");
    CHECK(human_bytes(4294959104ull) == "4.0 GiB");
}
