// libFuzzer target: loading a composite object from hostile bytes through the public API,
// ndshm::load<T>, which parses the .npy header, the trailer, the object's table of contents and its
// cereal blob. Each input becomes a file in a private directory backend; anything but a loaded object
// or an ndshm::error (format_error, serialization_error, dtype_mismatch, ...) is a bug.
#include "object_frame.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>

namespace {

std::string g_dir;

void remove_dir()
{
    std::error_code ec;
    std::filesystem::remove_all(g_dir, ec);
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***)
{
    char tmpl[] = "/tmp/ndshm_fuzz_XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) {
        std::abort();
    }
    g_dir = tmpl;
    std::atexit(remove_dir);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    const std::string name = "ndshm_fuzz_object";
    const std::string path = g_dir + "/" + name;
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || (size != 0 && ::write(fd, data, size) != static_cast<ssize_t>(size))) {
        std::abort();
    }
    ::close(fd);
    ndshm::options o;
    o.directory = g_dir;
    o.ready_timeout = std::chrono::milliseconds(0);
    try {
        const fuzz_frame f = ndshm::load<fuzz_frame>(name, o);
        double sum = 0;
        for (const float v : f.pixels) { // read every element of the zero-copy array
            sum += static_cast<double>(v);
        }
        for (const auto& field : f.fields) {
            for (const double v : field.second) {
                sum += v;
            }
        }
        (void)sum;
    } catch (const ndshm::error&) {
        // refused: fine
    }
    return 0;
}
