// A pool of forked workers filling one shared array, each its own block of rows.
//
// The parent creates the array before forking, so every child inherits the handle (and the mapping)
// and writes straight into the parent's memory: nothing is attached, sent or copied back. Handles in
// a forked child never unlink the segment, so the children may exit any way they like.
#include <ndshm/ndshm.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <exception>
#include <system_error>
#include <vector>

namespace {

constexpr std::size_t rows = 1000, cols = 4, workers = 4;

int run()
{
    // [readme]
    auto a = ndshm::shared_ndarray<double>::create({rows, cols});

    std::vector<pid_t> children;
    for (std::size_t w = 0; w < workers; ++w) {
        std::fflush(stdout); // a child must not inherit unwritten output
        const pid_t pid = ::fork();
        if (pid < 0) {
            throw std::system_error(errno, std::generic_category(), "fork");
        }
        if (pid == 0) {
            // Worker w: rows [first, last) of the parent's array, through the inherited handle.
            const std::size_t first = w * rows / workers, last = (w + 1) * rows / workers;
            for (std::size_t i = first; i < last; ++i) {
                for (std::size_t j = 0; j < cols; ++j) {
                    a(i, j) = static_cast<double>(10 * i + j);
                }
            }
            std::printf("worker %zu (pid %d): filled rows %zu to %zu\n", w, static_cast<int>(::getpid()), first,
                        last - 1);
            std::fflush(stdout);
            a.reset(); // the child's last handle: unmaps, but never unlinks the parent's segment
            ::_exit(0);
        }
        children.push_back(pid);
    }
    int failed = 0;
    for (const pid_t pid : children) {
        int status = 0;
        failed += ::waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
    }
    // [readme-end]

    std::size_t wrong = 0;
    for (std::size_t i = 0; i < rows; ++i) {
        for (std::size_t j = 0; j < cols; ++j) {
            wrong += a(i, j) == static_cast<double>(10 * i + j) ? 0 : 1;
        }
    }
    std::printf("parent: %zu workers done (%d failed); %zu of %zu elements wrong; a(999, 3) = %.0f\n", workers, failed,
                wrong, a.size(), a(999, 3));

    // The children's handles are gone, yet the segment is still there: any process can still attach it.
    const auto again = ndshm::shared_ndarray<double>::attach(a.name());
    const double sum = xt::sum(again.view())();
    std::printf("parent: '%s' still exists after the workers exited; attached again, sum = %.0f\n", a.name().c_str(),
                sum);
    return failed == 0 && wrong == 0 && sum == 19986000.0 ? 0 : 1; // sum of 10 i + j
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
