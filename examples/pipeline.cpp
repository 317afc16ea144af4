// A three-stage pipeline of processes that pass arrays through queues.
//
//   source process  --q1-->  filter process  --q2-->  sink (this process)
//
// Only segment names travel through the queues; the frames themselves stay where they were written,
// and each push hands ownership on: the last stage owns the frames it pops, and its handles unlink them.
// Each stage closes its output queue when its input is exhausted, so the end flows down the pipeline.
#include <ndshm/ndshm.hpp>
#include <ndshm/queue.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <exception>
#include <string>
#include <system_error>

namespace {

constexpr std::size_t rows = 480, cols = 640;
constexpr int frames = 12;

// [readme]
// Stage 1: makes frames and pushes them; only their names travel.
int source(const std::string& out_name)
{
    auto out = ndshm::array_queue::attach(out_name);
    for (int k = 0; k < frames; ++k) {
        auto frame = ndshm::shared_ndarray<float>::create({rows, cols});
        for (std::size_t i = 0; i < rows; ++i) {
            for (std::size_t j = 0; j < cols; ++j) {
                frame(i, j) = static_cast<float>(static_cast<std::size_t>(k) + (i * cols + j) % 7);
            }
        }
        out.push(std::move(frame)); // frame is empty now: the next stage will own the array
    }
    out.close(); // the end of the stream
    return 0;
}

// Stage 2: pops each frame, subtracts its mean in place, passes it on.
int filter(const std::string& in_name, const std::string& out_name)
{
    auto in = ndshm::array_queue::attach(in_name);
    auto out = ndshm::array_queue::attach(out_name);
    while (auto frame = in.pop<float>()) { // an empty handle once q1 is closed and drained
        const double mean = xt::mean(frame.view())();
        frame.view() -= static_cast<float>(mean);
        out.push(std::move(frame));
    }
    out.close();
    return 0;
}

// Runs f in a child process and returns its pid.
template <class F>
pid_t spawn(F f)
{
    std::fflush(stdout);
    const pid_t pid = ::fork();
    if (pid < 0) {
        throw std::system_error(errno, std::generic_category(), "fork");
    }
    if (pid == 0) {
        int code = 1;
        try {
            code = f();
        } catch (const std::exception& e) {
            std::fprintf(stderr, "stage %d: %s\n", static_cast<int>(::getpid()), e.what());
        }
        std::fflush(stdout);
        ::_exit(code);
    }
    return pid;
}

int run()
{
    // This process creates (and owns) both queues; the stages open them by name.
    auto q1 = ndshm::array_queue::create(4);
    auto q2 = ndshm::array_queue::create(4);
    const pid_t s1 = spawn([&] { return source(q1.name()); });
    const pid_t s2 = spawn([&] { return filter(q1.name(), q2.name()); });

    // Stage 3, the sink: owns each frame it pops; the frame's segment goes when `frame` does.
    int received = 0;
    double worst = 0;
    while (auto frame = q2.pop<float>()) {
        worst = std::max(worst, std::abs(static_cast<double>(xt::mean(frame.view())())));
        ++received;
    }
    // [readme-end]

    int failed = 0;
    for (const pid_t pid : {s1, s2}) {
        int status = 0;
        failed += ::waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
    }
    std::printf("sink: received %d of %d frames of %zu x %zu float32 through two queues; largest |mean| after the "
                "filter: %.2g; %d stage(s) failed\n",
                received, frames, rows, cols, worst, failed);
    return received == frames && worst < 1e-3 && failed == 0 ? 0 : 1;
}

} // namespace

int main()
{
    try {
        return run();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    }
}
