// A C++ producer and a Python consumer: C++ streams frames through an ndshm::channel, a Python process
// (examples/python_stream.py, with `import ndshm`) reads each one in place and sends an array of results
// back through an ndshm::array_queue, which C++ pops and owns.
//
//     python_stream [PYTHON [SCRIPT]]
//
// PYTHON must import ndshm and NumPy (default: the python3 CMake found, with this build's module on
// PYTHONPATH); SCRIPT defaults to python_stream.py next to this file.
#include <ndshm/channel.hpp>
#include <ndshm/ndshm.hpp>
#include <ndshm/queue.hpp>

#include <spawn.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

extern char** environ;

#ifndef NDSHM_EXAMPLE_PYTHON
#define NDSHM_EXAMPLE_PYTHON "/usr/bin/python3"
#endif
#ifndef NDSHM_EXAMPLE_SCRIPT
#define NDSHM_EXAMPLE_SCRIPT "python_stream.py"
#endif

namespace {

/// Starts `python script args...` (the module of this build on PYTHONPATH, if it was built here).
pid_t spawn_python(std::string python, std::string script, std::string a, std::string b)
{
#ifdef NDSHM_EXAMPLE_PYTHONPATH
    ::setenv("PYTHONPATH", NDSHM_EXAMPLE_PYTHONPATH, 1);
#endif
    char* argv[] = {python.data(), script.data(), a.data(), b.data(), nullptr};
    std::fflush(stdout); // keep this process's lines before Python's
    pid_t pid = 0;
    return ::posix_spawn(&pid, argv[0], nullptr, nullptr, argv, environ) == 0 ? pid : -1;
}

/// Waits for `pid`; true if it exited with status 0.
bool succeeded(pid_t pid)
{
    int status = 0;
    return pid > 0 && ::waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

constexpr std::size_t frames_to_send = 100;

int run(const std::string& python, const std::string& script)
{
    // [readme]
    auto frames = ndshm::channel<float>::create({480, 640}, 4); // four pre-faulted slots of 480 x 640
    auto results = ndshm::array_queue::create(1);               // Python sends its answer back here
    const pid_t consumer = spawn_python(python, script, frames.name(), results.name());

    for (std::size_t i = 0; i < frames_to_send; ++i) {
        auto frame = frames.loan();           // a free slot; waits while Python is four frames behind
        frame.view() = static_cast<float>(i); // write the frame in place
        frames.publish(std::move(frame));     // hand it over: no copy
    }
    frames.close(); // Python's loop ends once it has read every frame

    auto means = results.pop<double>(); // an array Python made; this process owns it now
    std::printf("C++: Python sent %zu means, the last %g\n", means.size(), means(means.size() - 1));
    // [readme-end]

    bool ok = succeeded(consumer) && means.size() == frames_to_send;
    for (std::size_t i = 0; ok && i < means.size(); ++i) {
        ok = means(i) == static_cast<double>(i);
    }
    std::printf("C++: every mean as sent: %s\n", ok ? "yes" : "NO");
    return ok ? 0 : 1;
}

} // namespace

int main(int argc, char** argv)
{
    try {
        return run(argc > 1 ? argv[1] : NDSHM_EXAMPLE_PYTHON, argc > 2 ? argv[2] : NDSHM_EXAMPLE_SCRIPT);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "python_stream: %s\n", e.what());
        return 1;
    }
}
