// Streams of items from a producer process to a consumer process, side by side in one binary. The
// producer fills every element of each item (item k, element i: k + i as uint32), the consumer sums
// every element (uint64) and the sums are checked. Workloads: 10 frames of 36 MB, 10 items of 64 MiB,
// 25 of 4 MiB, 400 of 256 KiB and 20,000 of 4 KiB per run. Methods:
//
//   floor           one process fills, then sums, each item in one pre-faulted buffer: no IPC at all
//   pipe            the producer fills a buffer and writes it into a pipe (1 MiB buffer); the consumer
//                   reads it into its own warm buffer and sums it
//   socket          the same through a Unix stream socket (4 MiB buffers)
//   channel         ndshm::channel<uint32_t>: loan, fill in place, publish; receive, sum, release
//   queue_fresh     create() a new array per item, fill, push; pop, sum, let go (unlinked)
//   queue_recycled  array_queue::make() per item, fill, push; pop, sum, let go (back to the queue)
//
// The consumer is forked and attached before timing, and one untimed run warms every method up (the
// channel's slots and the queue's pool are then mapped on both sides). Real time of a whole run;
// `per_item` is the time per item. Run each benchmark several times (--benchmark_repetitions) and
// compare the minimum, as scripts/bench_report.py does.
//
//     bench_perf                                  the benchmarks
//     bench_perf --stream METHOD BYTES ITEMS      one untimed warm-up stream and one of ITEMS items, for
//                                                 counting system calls per item (perf stat, strace -c)
#include <ndshm/channel.hpp>
#include <ndshm/queue.hpp>
#include <ndshm/shared_ndarray.hpp>

#include <benchmark/benchmark.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

constexpr std::int64_t KiB = 1024;
constexpr std::int64_t MiB = 1024 * KiB;
/// A 36 MB frame: 3000 x 3000 float32, the size of a camera frame.
constexpr std::int64_t frame36 = 36000000;

enum method : int { floor_m, pipe_m, socket_m, channel_m, queue_fresh_m, queue_recycled_m };
constexpr const char* method_names[] = {"floor", "pipe", "socket", "channel", "queue_fresh", "queue_recycled"};

/// Items per run of a workload.
std::size_t items_for(std::int64_t bytes)
{
    if (bytes <= 4 * KiB) {
        return 20000;
    }
    if (bytes <= 256 * KiB) {
        return 400;
    }
    if (bytes <= 4 * MiB) {
        return 25;
    }
    return 10;
}

/// Slots of the channel (and capacity of the queue) for items of `bytes`: room to run ahead for small
/// items, four in flight for large ones.
std::size_t slots_for(std::int64_t bytes) { return bytes <= 256 * KiB ? 16 : 4; }

// ---- the work on both sides --------------------------------------------------------------------------

void fill(std::uint32_t* p, std::size_t n, std::uint64_t k) noexcept
{
    const auto base = static_cast<std::uint32_t>(k);
    for (std::size_t i = 0; i < n; ++i) {
        p[i] = base + static_cast<std::uint32_t>(i);
    }
}

std::uint64_t sum(const std::uint32_t* p, std::size_t n) noexcept
{
    std::uint64_t s = 0;
    for (std::size_t i = 0; i < n; ++i) {
        s += p[i];
    }
    return s;
}

/// What sum() gives for item k of n elements (no element wraps: k + i stays below 2^32).
std::uint64_t expected(std::uint64_t k, std::uint64_t n) noexcept { return n * k + n * (n - 1) / 2; }

void write_all(int fd, const void* p, std::size_t n)
{
    const auto* c = static_cast<const char*>(p);
    while (n > 0) {
        const ssize_t w = ::write(fd, c, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            throw std::runtime_error("write failed");
        }
        c += w;
        n -= static_cast<std::size_t>(w);
    }
}

bool read_all(int fd, void* p, std::size_t n)
{
    auto* c = static_cast<char*>(p);
    while (n > 0) {
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

/// A pre-faulted buffer of n uint32 (the floor's, and the pipe and socket sides').
std::vector<std::uint32_t> warm_buffer(std::size_t n) { return std::vector<std::uint32_t>(n, 1); }

// ---- one stream: a producer (this process) and a consumer process --------------------------------

/// The consumer of a stream, forked once: it sets up its side (attaches), then for every command
/// (first item number, item count) consumes that many items and answers with their total sum.
class stream {
public:
    stream(method how, std::size_t bytes) : m_how(how), m_bytes(bytes), m_n(bytes / sizeof(std::uint32_t))
    {
        const std::size_t slots = slots_for(static_cast<std::int64_t>(bytes));
        if (how == channel_m) {
            m_channel = ndshm::channel<std::uint32_t>::create({m_n}, slots);
        } else if (how == queue_fresh_m || how == queue_recycled_m) {
            m_queue = ndshm::array_queue::create(slots);
        } else if (how == floor_m) {
            m_buf = warm_buffer(m_n);
            return;
        }
        int ctl[2], rep[2], data[2];
        if (::pipe(ctl) != 0 || ::pipe(rep) != 0) {
            throw std::runtime_error("pipe failed");
        }
        if (how == socket_m) {
            if (::socketpair(AF_UNIX, SOCK_STREAM, 0, data) != 0) {
                throw std::runtime_error("socketpair failed");
            }
            const int big = 4 << 20;
            (void)::setsockopt(data[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
            (void)::setsockopt(data[1], SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
        } else {
            if (::pipe(data) != 0) {
                throw std::runtime_error("pipe failed");
            }
            (void)::fcntl(data[1], F_SETPIPE_SZ, 1 << 20); // the largest pipe an unprivileged user may ask for
        }
        std::fflush(nullptr);
        m_pid = ::fork();
        if (m_pid < 0) {
            throw std::runtime_error("fork failed");
        }
        if (m_pid == 0) {
            ::close(ctl[1]);
            ::close(rep[0]);
            ::close(data[1]);
            int code = 0;
            try {
                consume(ctl[0], rep[1], data[0]);
            } catch (const std::exception& e) {
                std::fprintf(stderr, "consumer: %s\n", e.what());
                code = 1;
            }
            ::_exit(code);
        }
        ::close(ctl[0]);
        ::close(rep[1]);
        ::close(data[0]);
        m_ctl = ctl[1];
        m_rep = rep[0];
        m_data = data[1];
        if (how == pipe_m || how == socket_m) {
            m_buf = warm_buffer(m_n);
        }
    }
    stream(const stream&) = delete;
    stream& operator=(const stream&) = delete;
    ~stream()
    {
        if (m_pid > 0) {
            ::close(m_ctl); // the consumer sees end of file and exits
            ::close(m_data);
            int status = 0;
            ::waitpid(m_pid, &status, 0);
            ::close(m_rep);
        }
    }

    /// Streams `items` items, numbered from m_next; returns false if a sum was wrong.
    bool run(std::size_t items)
    {
        const std::uint64_t first = m_next;
        m_next += items;
        std::uint64_t want = 0;
        for (std::uint64_t k = first; k < first + items; ++k) {
            want += expected(k, m_n);
        }
        if (m_how == floor_m) {
            std::uint64_t got = 0;
            for (std::uint64_t k = first; k < first + items; ++k) {
                fill(m_buf.data(), m_n, k);
                benchmark::ClobberMemory();
                got += sum(m_buf.data(), m_n);
            }
            return got == want;
        }
        const std::uint64_t cmd[2] = {first, items};
        write_all(m_ctl, cmd, sizeof cmd);
        for (std::uint64_t k = first; k < first + items; ++k) {
            produce(k);
        }
        std::uint64_t got = 0;
        if (!read_all(m_rep, &got, sizeof got)) {
            throw std::runtime_error("the consumer died");
        }
        return got == want;
    }

private:
    void produce(std::uint64_t k)
    {
        switch (m_how) {
        case pipe_m:
        case socket_m:
            fill(m_buf.data(), m_n, k);
            write_all(m_data, m_buf.data(), m_bytes);
            break;
        case channel_m: {
            auto s = m_channel.loan();
            fill(s.data(), m_n, k);
            m_channel.publish(std::move(s));
            break;
        }
        case queue_fresh_m: {
            auto a = ndshm::shared_ndarray<std::uint32_t>::create({m_n});
            fill(a.data(), m_n, k);
            m_queue.push(std::move(a));
            break;
        }
        case queue_recycled_m: {
            auto a = m_queue.make<std::uint32_t>({m_n});
            fill(a.data(), m_n, k);
            m_queue.push(std::move(a));
            break;
        }
        case floor_m:
            break;
        }
    }

    void consume(int ctl, int rep, int data)
    {
        ndshm::channel<std::uint32_t> in_channel;
        ndshm::array_queue in_queue;
        std::vector<std::uint32_t> buf;
        if (m_how == channel_m) {
            in_channel = ndshm::channel<std::uint32_t>::attach(m_channel.name());
        } else if (m_how == queue_fresh_m || m_how == queue_recycled_m) {
            in_queue = ndshm::array_queue::attach(m_queue.name());
        } else {
            buf = warm_buffer(m_n);
        }
        std::uint64_t cmd[2];
        while (read_all(ctl, cmd, sizeof cmd)) {
            std::uint64_t total = 0;
            for (std::uint64_t i = 0; i < cmd[1]; ++i) {
                switch (m_how) {
                case pipe_m:
                case socket_m:
                    if (!read_all(data, buf.data(), m_bytes)) {
                        throw std::runtime_error("short read");
                    }
                    total += sum(buf.data(), m_n);
                    break;
                case channel_m: {
                    auto s = in_channel.receive();
                    total += sum(s.data(), s.size());
                    break;
                }
                case queue_fresh_m:
                case queue_recycled_m: {
                    auto a = in_queue.pop<std::uint32_t>();
                    total += sum(a.data(), a.size());
                    break;
                }
                case floor_m:
                    break;
                }
            }
            write_all(rep, &total, sizeof total);
        }
    }

    method m_how;
    std::size_t m_bytes;
    std::size_t m_n;
    std::uint64_t m_next = 0;
    std::vector<std::uint32_t> m_buf;
    ndshm::channel<std::uint32_t> m_channel;
    ndshm::array_queue m_queue;
    pid_t m_pid = -1;
    int m_ctl = -1, m_rep = -1, m_data = -1;
};

void BM_stream(benchmark::State& state)
{
    const auto how = static_cast<method>(state.range(0));
    const auto bytes = static_cast<std::size_t>(state.range(1));
    const std::size_t items = items_for(state.range(1));
    stream s(how, bytes);
    bool ok = s.run(std::max<std::size_t>(items / 4, 4)); // warm-up: slots, pool and buffers mapped on both sides
    for (auto _ : state) {
        ok = s.run(items) && ok;
    }
    if (!ok) {
        state.SkipWithError("wrong sum");
    }
    state.SetLabel(std::string(method_names[how]) + ", " + std::to_string(items) + " items");
    state.counters["items"] = static_cast<double>(items);
    state.counters["per_item"] = benchmark::Counter(
        static_cast<double>(items), benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(items * bytes));
}

void sizes(benchmark::internal::Benchmark* b)
{
    b->ArgNames({"method", "bytes"});
    for (std::int64_t bytes : {4 * KiB, 256 * KiB, 4 * MiB, frame36, 64 * MiB}) {
        for (int m = floor_m; m <= queue_recycled_m; ++m) {
            b->Args({m, bytes});
        }
    }
    b->Unit(benchmark::kMillisecond)->UseRealTime();
}

} // namespace

BENCHMARK(BM_stream)->Apply(sizes);

int main(int argc, char** argv)
{
    if (argc == 5 && std::strcmp(argv[1], "--stream") == 0) {
        // One stream for counting system calls: a warm-up run, then ITEMS items.
        int how = -1;
        for (int m = floor_m; m <= queue_recycled_m; ++m) {
            if (std::strcmp(argv[2], method_names[m]) == 0) {
                how = m;
            }
        }
        if (how < 0) {
            std::fprintf(stderr, "unknown method %s\n", argv[2]);
            return 2;
        }
        const auto bytes = static_cast<std::size_t>(std::strtoull(argv[3], nullptr, 10));
        const auto items = static_cast<std::size_t>(std::strtoull(argv[4], nullptr, 10));
        stream s(static_cast<method>(how), bytes);
        const bool ok = s.run(std::max<std::size_t>(items_for(static_cast<std::int64_t>(bytes)) / 4, 4)) &&
                        s.run(items);
        return ok ? 0 : 1;
    }
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) {
        return 1;
    }
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
