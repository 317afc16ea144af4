// C++ and NumPy working on the same array: C++ creates it, a Python script maps it with
// np.load(..., mmap_mode='r+') and doubles it in place, and C++ sees the doubled values.
//
//     numpy_interop [PYTHON [SCRIPT]]
//
// PYTHON must have NumPy (default: the python3 CMake found); SCRIPT defaults to numpy_interop.py
// next to this file.
#include <ndshm/ndshm.hpp>

#include <spawn.h>
#include <sys/wait.h>

#include <cstdio>
#include <exception>
#include <string>

extern char** environ;

#ifndef NDSHM_EXAMPLE_PYTHON
#define NDSHM_EXAMPLE_PYTHON "/usr/bin/python3"
#endif
#ifndef NDSHM_EXAMPLE_SCRIPT
#define NDSHM_EXAMPLE_SCRIPT "numpy_interop.py"
#endif

namespace {

/// Runs `python script name` and returns its exit code (-1 if it did not start or did not exit).
int run_python(std::string python, std::string script, std::string name)
{
    char* argv[] = {python.data(), script.data(), name.data(), nullptr};
    std::fflush(stdout); // keep this process's lines before Python's
    pid_t pid = 0;
    if (::posix_spawn(&pid, argv[0], nullptr, nullptr, argv, environ) != 0) {
        return -1;
    }
    int status = 0;
    if (::waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) {
        return -1;
    }
    return WEXITSTATUS(status);
}

int run(const std::string& python, const std::string& script)
{
    // [readme]
    // A 3 x 4 float64 array in shared memory; on Linux it is also the file /dev/shm/<name>.
    auto a = ndshm::shared_ndarray<double>::from_array(xt::xarray<double>{{0, 1, 2, 3}, {4, 5, 6, 7}, {8, 9, 10, 11}});
    std::printf("C++: created '%s', a(2, 3) = %g\n", a.name().c_str(), a(2, 3));

    // Python: a = np.load('/dev/shm/' + name, mmap_mode='r+'); a *= 2
    if (run_python(python, script, a.name()) != 0) {
        std::printf("C++: the Python script failed\n");
        return 1;
    }
    std::printf("C++: after Python, a(2, 3) = %g\n", a(2, 3)); // 22: NumPy wrote into this memory
    // [readme-end]

    const bool ok = a.view() == 2.0 * xt::arange<double>(12.0).reshape({3, 4});
    std::printf("C++: every element doubled: %s\n", ok ? "yes" : "NO");
    return ok ? 0 : 1;
}

} // namespace

int main(int argc, char** argv)
{
    try {
        return run(argc > 1 ? argv[1] : NDSHM_EXAMPLE_PYTHON, argc > 2 ? argv[2] : NDSHM_EXAMPLE_SCRIPT);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    }
}
