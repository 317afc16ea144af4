// Composite objects: one call puts a whole object (strings, maps, xtensor arrays, shared arrays) into
// one shared-memory segment, and another process rebuilds it from the name.
//
// The producer shares a `frame` and starts the consumer, a separate program (this same binary, run
// as `share_object load NAME`). The consumer loads the frame: its shared_ndarray member is a view of
// the segment, so the consumer's write shows up in the producer's own load of the object; its
// xt::xarray members are copies.
#include <ndshm/ndshm.hpp>
#include <ndshm/object.hpp>

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <exception>
#include <map>
#include <string>

extern char** environ;

namespace {

/// Starts this program again as `argv0 load NAME` and returns its exit code (-1 if it did not exit).
int run_consumer(const char* argv0, const std::string& name)
{
    std::string arg0 = argv0, command = "load", arg2 = name;
    char* argv[] = {arg0.data(), command.data(), arg2.data(), nullptr};
    std::fflush(stdout);
    pid_t pid = 0;
    if (::posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv, environ) != 0) {
        return -1;
    }
    int status = 0;
    if (::waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) {
        return -1;
    }
    return WEXITSTATUS(status);
}

// [readme]
struct frame {
    std::string label;
    std::map<std::string, xt::xarray<double>> fields; // copied out on load
    ndshm::shared_ndarray<float> pixels;              // a zero-copy view on load
    template <class A>
    void serialize(A& ar)
    {
        ar(label, fields, pixels);
    }
};

// Consumer: another process that knows nothing but the name.
int consume(const std::string& name)
{
    frame g = ndshm::load<frame>(name);
    std::printf("consumer: '%s', %zu fields, pixels %zu x %zu\n", g.label.c_str(), g.fields.size(), g.pixels.shape()[0],
                g.pixels.shape()[1]);
    g.pixels(0, 0) = 1.0f; // written into the object's segment
    return g.fields.at("temperature")(1, 1) == 22.0 ? 0 : 1;
}

// Producer
int produce(const char* argv0)
{
    frame f;
    f.label = "frame 7";
    f.fields["temperature"] = xt::xarray<double>{{20.5, 21.0}, {21.5, 22.0}};
    f.pixels = ndshm::shared_ndarray<float>::create({480, 640});
    ndshm::shared_object h = ndshm::share(f); // one segment for everything; f is not modified
    std::printf("producer: shared '%s' as %s (%zu arrays, one segment)\n", f.label.c_str(), h.name().c_str(),
                h.array_count());
    if (run_consumer(argv0, h.name()) != 0) {
        return 1;
    }
    frame mine = ndshm::load<frame>(h); // another view of the same segment
    std::printf("producer: the consumer wrote %g into the shared pixels\n", static_cast<double>(mine.pixels(0, 0)));
    // [readme-end]
    const bool ok = mine.pixels(0, 0) == 1.0f && f.pixels(0, 0) == 0.0f && mine.label == f.label;
    std::printf("everything as expected: %s\n", ok ? "yes" : "NO");
    return ok ? 0 : 1;
}

} // namespace

int main(int argc, char** argv)
{
    try {
        if (argc == 3 && std::strcmp(argv[1], "load") == 0) {
            return consume(argv[2]);
        }
        return produce(argv[0]);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    }
}
