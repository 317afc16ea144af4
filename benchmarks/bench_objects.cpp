// Composite objects: an object holding 10,000 arrays of 1 KiB (128 doubles) handed from this process
// to another one that rebuilds it, three ways, side by side:
//
//   ndshm_share_load/xarray    share(obj) -> name over a pipe -> load<T>(name), arrays copied out
//   ndshm_share_load/views     the same, loaded as shared_ndarray members (zero-copy views)
//   separate_segments          10,000 shared_ndarray segments -> 10,000 names -> 10,000 attaches
//   cereal_pipe                cereal's binary archive streamed through a pipe, decoded there
//   ndshm_queue_recycled       share(obj, queue) into a segment of the queue's pool -> push ->
//                              pop_object + load<T> there, views; the segment comes back when the
//                              worker drops the object, and the next share reuses it (warm pages)
//
// The worker reads every element of every array it receives (their sum is checked).
// and, within one process, share alone and load alone (warm: the segment exists). The other process
// is one long-lived worker forked at start-up; every handoff ends when it acknowledges. Each share
// and each separate segment is fresh memory, so those rows include first-touch page faults (cold);
// load alone reads pages already in memory (warm).
//
//     bench_objects [--benchmark_filter=...]
#include <ndshm/all.hpp>

#include <benchmark/benchmark.h>

#include <cereal/archives/binary.hpp>
#include <cereal/types/vector.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <istream>
#include <ostream>
#include <stdexcept>
#include <streambuf>
#include <string>
#include <vector>

namespace {

constexpr std::size_t n_arrays = 10000;
constexpr std::size_t n_elems = 128; // 1 KiB of doubles

struct bag {
    std::vector<xt::xarray<double>> arrays;
    template <class A>
    void serialize(A& ar)
    {
        ar(arrays);
    }
};

struct bag_views {
    std::vector<ndshm::shared_ndarray<const double>> arrays;
    template <class A>
    void serialize(A& ar)
    {
        ar(arrays);
    }
};

const bag& source()
{
    static const bag b = [] {
        bag x;
        x.arrays.reserve(n_arrays);
        for (std::size_t i = 0; i < n_arrays; ++i) {
            x.arrays.push_back(xt::arange<double>(static_cast<double>(n_elems)) + static_cast<double>(i));
        }
        return x;
    }();
    return b;
}

// ---- pipes and the worker ------------------------------------------------------------------------

void write_all(int fd, const void* p, std::size_t n)
{
    const auto* c = static_cast<const char*>(p);
    while (n != 0) {
        const ssize_t r = ::write(fd, c, n);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            throw std::runtime_error("write to pipe failed");
        }
        c += r;
        n -= static_cast<std::size_t>(r);
    }
}

bool read_all(int fd, void* p, std::size_t n)
{
    auto* c = static_cast<char*>(p);
    while (n != 0) {
        const ssize_t r = ::read(fd, c, n);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            return false;
        }
        c += r;
        n -= static_cast<std::size_t>(r);
    }
    return true;
}

/// A streambuf that writes to a file descriptor through a 64 KiB buffer.
class fd_outbuf : public std::streambuf {
public:
    explicit fd_outbuf(int fd) : m_fd(fd), m_buf(65536) { setp(m_buf.data(), m_buf.data() + m_buf.size()); }
    int sync() override
    {
        write_all(m_fd, pbase(), static_cast<std::size_t>(pptr() - pbase()));
        setp(m_buf.data(), m_buf.data() + m_buf.size());
        return 0;
    }
    int_type overflow(int_type c) override
    {
        sync();
        if (c != traits_type::eof()) {
            *pptr() = static_cast<char>(c);
            pbump(1);
        }
        return c;
    }
    std::streamsize xsputn(const char* s, std::streamsize n) override
    {
        if (n > epptr() - pptr()) {
            sync();
            write_all(m_fd, s, static_cast<std::size_t>(n));
            return n;
        }
        std::memcpy(pptr(), s, static_cast<std::size_t>(n));
        pbump(static_cast<int>(n));
        return n;
    }

private:
    int m_fd;
    std::vector<char> m_buf;
};

/// A streambuf that reads from a file descriptor, at most `limit` bytes.
class fd_inbuf : public std::streambuf {
public:
    fd_inbuf(int fd, std::size_t limit) : m_fd(fd), m_left(limit), m_buf(65536)
    {
        setg(m_buf.data(), m_buf.data(), m_buf.data());
    }
    int_type underflow() override
    {
        if (m_left == 0) {
            return traits_type::eof();
        }
        const std::size_t n = std::min(m_left, m_buf.size());
        if (!read_all(m_fd, m_buf.data(), n)) {
            return traits_type::eof();
        }
        m_left -= n;
        setg(m_buf.data(), m_buf.data(), m_buf.data() + n);
        return traits_type::to_int_type(m_buf[0]);
    }

private:
    int m_fd;
    std::size_t m_left;
    std::vector<char> m_buf;
};

/// The sum of every element of the 10,000 arrays, as source() makes them.
double expected_sum()
{
    const double per = static_cast<double>(n_elems) * static_cast<double>(n_elems - 1) / 2.0;
    return static_cast<double>(n_arrays) * per +
           static_cast<double>(n_elems) * static_cast<double>(n_arrays) * static_cast<double>(n_arrays - 1) / 2.0;
}

/// Reads every element of every array.
template <class Arrays>
bool read_everything(const Arrays& arrays)
{
    double s = 0;
    for (const auto& a : arrays) {
        for (const double x : a) {
            s += x;
        }
    }
    return arrays.size() == n_arrays && s == expected_sum();
}

struct worker {
    pid_t pid = -1;
    int to = -1;   // commands to the worker
    int from = -1; // acknowledgements
};

worker g_worker;

/// The worker: reads a command and its payload, rebuilds what it names, acknowledges with 1 byte.
[[noreturn]] void worker_main(int in, int out)
{
    for (;;) {
        char cmd = 0;
        std::uint64_t len = 0;
        if (!read_all(in, &cmd, 1) || !read_all(in, &len, sizeof len)) {
            ::_exit(0);
        }
        char ok = 1;
        try {
            if (cmd == 'c') { // cereal's binary archive through the pipe
                fd_inbuf buf(in, len);
                std::istream is(&buf);
                std::vector<std::vector<double>> arrays;
                cereal::BinaryInputArchive ar(is);
                ar(arrays);
                ok = read_everything(arrays) ? 1 : 0;
            } else {
                std::string payload(len, '\0');
                if (!read_all(in, payload.data(), len)) {
                    ::_exit(1);
                }
                if (cmd == 'x') {
                    const bag b = ndshm::load<bag>(payload);
                    ok = read_everything(b.arrays) ? 1 : 0;
                } else if (cmd == 'v') {
                    const bag_views b = ndshm::load<bag_views>(payload);
                    ok = read_everything(b.arrays) ? 1 : 0;
                } else if (cmd == 'q') { // the queue's name: pop the object from it
                    static ndshm::array_queue q;
                    if (q.name() != payload) {
                        q = ndshm::array_queue::attach(payload);
                    }
                    const bag_views b = ndshm::load<bag_views>(q.pop_object());
                    ok = read_everything(b.arrays) ? 1 : 0;
                } else if (cmd == 's') { // newline-separated names of separate segments
                    std::vector<ndshm::shared_ndarray<const double>> arrays;
                    arrays.reserve(n_arrays);
                    std::size_t start = 0;
                    for (std::size_t i = 0; i < payload.size(); ++i) {
                        if (payload[i] == '\n') {
                            arrays.push_back(
                                ndshm::shared_ndarray<const double>::attach(payload.substr(start, i - start)));
                            start = i + 1;
                        }
                    }
                    ok = read_everything(arrays) ? 1 : 0;
                }
            }
        } catch (const std::exception& e) {
            std::fprintf(stderr, "worker: %s\n", e.what());
            ok = 0;
        }
        write_all(out, &ok, 1);
    }
}

void start_worker()
{
    int to[2];
    int from[2];
    if (::pipe(to) != 0 || ::pipe(from) != 0) {
        throw std::runtime_error("pipe failed");
    }
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) {
        throw std::runtime_error("fork failed");
    }
    if (pid == 0) {
        ::close(to[1]);
        ::close(from[0]);
        worker_main(to[0], from[1]);
    }
    ::close(to[0]);
    ::close(from[1]);
    g_worker = worker{pid, to[1], from[0]};
}

void stop_worker()
{
    ::close(g_worker.to); // the worker sees end of file and exits
    ::close(g_worker.from);
    int status = 0;
    (void)::waitpid(g_worker.pid, &status, 0);
}

void send(char cmd, const std::string& payload)
{
    const std::uint64_t len = payload.size();
    write_all(g_worker.to, &cmd, 1);
    write_all(g_worker.to, &len, sizeof len);
    write_all(g_worker.to, payload.data(), payload.size());
}

void wait_ack(benchmark::State& state)
{
    char ok = 0;
    if (!read_all(g_worker.from, &ok, 1) || ok != 1) {
        state.SkipWithError("the worker failed");
    }
}

// ---- the benchmarks ------------------------------------------------------------------------------

void ndshm_share_load(benchmark::State& state)
{
    const bag& b = source();
    const char cmd = state.range(0) == 0 ? 'x' : 'v';
    for (auto _ : state) {
        const ndshm::shared_object h = ndshm::share(b);
        send(cmd, h.name());
        wait_ack(state);
    }
    state.SetLabel(state.range(0) == 0 ? "xarray members, copied out" : "shared_ndarray members, views");
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(n_arrays * n_elems * sizeof(double)));
}
BENCHMARK(ndshm_share_load)->ArgName("views")->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

void separate_segments(benchmark::State& state)
{
    const bag& b = source();
    for (auto _ : state) {
        std::vector<ndshm::shared_ndarray<double>> arrays;
        arrays.reserve(n_arrays);
        std::string names;
        for (const auto& a : b.arrays) {
            arrays.push_back(ndshm::shared_ndarray<double>::from_array(a.data(), {n_elems}));
            names += arrays.back().name();
            names += '\n';
        }
        send('s', names);
        wait_ack(state);
    }
    state.SetLabel("10,000 segments, create + attach each");
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(n_arrays * n_elems * sizeof(double)));
}
BENCHMARK(separate_segments)->Unit(benchmark::kMillisecond)->UseRealTime();

void ndshm_queue_recycled(benchmark::State& state)
{
    const bag& b = source();
    auto q = ndshm::array_queue::create(2);
    send('q', q.name()); // warm: the pool's segment is made, mapped and faulted in on both sides
    q.push(ndshm::share(b, q));
    wait_ack(state);
    for (auto _ : state) {
        q.push(ndshm::share(b, q));
        send('q', q.name());
        wait_ack(state);
    }
    state.SetLabel("share(obj, queue) + pop_object + load, views, recycled segment");
    state.counters["reused"] = static_cast<double>(q.reused());
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(n_arrays * n_elems * sizeof(double)));
}
BENCHMARK(ndshm_queue_recycled)->Unit(benchmark::kMillisecond)->UseRealTime();

void cereal_pipe(benchmark::State& state)
{
    // The same data as std::vectors (cereal has no xtensor support); the byte count is known up front
    // so that the worker reads exactly one message.
    std::vector<std::vector<double>> arrays;
    for (const auto& a : source().arrays) {
        arrays.emplace_back(a.begin(), a.end());
    }
    const std::uint64_t len = 8 + n_arrays * (8 + n_elems * sizeof(double));
    for (auto _ : state) {
        const char cmd = 'c';
        write_all(g_worker.to, &cmd, 1);
        write_all(g_worker.to, &len, sizeof len);
        fd_outbuf buf(g_worker.to);
        {
            std::ostream os(&buf);
            cereal::BinaryOutputArchive ar(os);
            ar(arrays);
        }
        buf.pubsync();
        wait_ack(state);
    }
    state.SetLabel("cereal binary archive through a pipe");
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(n_arrays * n_elems * sizeof(double)));
}
BENCHMARK(cereal_pipe)->Unit(benchmark::kMillisecond)->UseRealTime();

void ndshm_share_only(benchmark::State& state)
{
    const bag& b = source();
    for (auto _ : state) {
        const ndshm::shared_object h = ndshm::share(b);
        benchmark::DoNotOptimize(h.name().data());
    }
    state.SetLabel("one process, fresh segment each time (cold pages)");
}
BENCHMARK(ndshm_share_only)->Unit(benchmark::kMillisecond)->UseRealTime();

void ndshm_load_only(benchmark::State& state)
{
    const ndshm::shared_object h = ndshm::share(source());
    for (auto _ : state) {
        if (state.range(0) == 0) {
            const bag b = ndshm::load<bag>(h.name());
            benchmark::DoNotOptimize(b.arrays.data());
        } else {
            const bag_views b = ndshm::load<bag_views>(h.name());
            benchmark::DoNotOptimize(b.arrays.data());
        }
    }
    state.SetLabel(state.range(0) == 0 ? "one process, warm, xarray copies" : "one process, warm, views");
}
BENCHMARK(ndshm_load_only)->ArgName("views")->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

} // namespace

int main(int argc, char** argv)
{
    (void)source(); // built before forking, outside every measurement
    start_worker();
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) {
        stop_worker();
        return 1;
    }
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    stop_worker();
    return 0;
}
