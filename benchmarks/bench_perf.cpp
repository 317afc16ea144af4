// Handing arrays to another process that reads every byte, 4 KiB to 256 MiB, side by side in one
// binary: ndshm create + attach (fresh pages), the loan/publish channel (steady state, pre-faulted
// slots), a pipe, a Unix socket, cereal's binary archive through a pipe, and memcpy into warm memory
// (the hardware limit). The reader is a persistent forked process, so no fork is timed.
#include <ndshm/channel.hpp>
#include <ndshm/queue.hpp>
#include <ndshm/shared_ndarray.hpp>

#include <benchmark/benchmark.h>
#include <cereal/archives/binary.hpp>
#include <cereal/types/vector.hpp>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <istream>
#include <numeric>
#include <ostream>
#include <streambuf>
#include <string>
#include <vector>

namespace {

constexpr std::int64_t KiB = 1024;
constexpr std::int64_t MiB = 1024 * KiB;

void write_all(int fd, const void* p, std::size_t n)
{
    const auto* c = static_cast<const char*>(p);
    while (n > 0) {
        const ssize_t w = ::write(fd, c, n);
        if (w <= 0) {
            if (w < 0 && errno == EINTR) {
                continue;
            }
            std::abort();
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
        if (r <= 0) {
            if (r < 0 && errno == EINTR) {
                continue;
            }
            return false;
        }
        c += r;
        n -= static_cast<std::size_t>(r);
    }
    return true;
}

/// Reads every byte: the sum of the 64-bit words.
std::uint64_t touch(const void* p, std::size_t n)
{
    const auto* w = static_cast<const std::uint64_t*>(p);
    return std::accumulate(w, w + n / 8, std::uint64_t{0});
}

/// A streambuf over a file descriptor, for cereal's archives.
class fd_buf : public std::streambuf {
public:
    explicit fd_buf(int fd) : m_fd(fd) { setg(m_in, m_in, m_in); }

protected:
    std::streamsize xsputn(const char* s, std::streamsize n) override
    {
        write_all(m_fd, s, static_cast<std::size_t>(n));
        return n;
    }
    int_type overflow(int_type c) override
    {
        if (c != traits_type::eof()) {
            const char ch = static_cast<char>(c);
            write_all(m_fd, &ch, 1);
        }
        return c;
    }
    std::streamsize xsgetn(char* s, std::streamsize n) override
    {
        std::streamsize got = std::min<std::streamsize>(n, egptr() - gptr());
        std::memcpy(s, gptr(), static_cast<std::size_t>(got));
        gbump(static_cast<int>(got));
        if (got < n) {
            if (!read_all(m_fd, s + got, static_cast<std::size_t>(n - got))) {
                return got;
            }
            got = n;
        }
        return got;
    }
    int_type underflow() override
    {
        const ssize_t r = ::read(m_fd, m_in, sizeof m_in);
        if (r <= 0) {
            return traits_type::eof();
        }
        setg(m_in, m_in, m_in + r);
        return traits_type::to_int_type(m_in[0]);
    }

private:
    int m_fd;
    char m_in[4096];
};

enum class method : std::uint32_t { stop, shm_attach, pipe, socket, cereal_pipe, channel, queue };

struct command {
    method how;
    std::uint32_t count; // channel: frames to receive
    std::uint64_t size;
    char name[48];
};

/// The reading process: forked once, it performs the receiving side of each method on command and
/// answers with the checksum.
class reader {
public:
    reader()
    {
        int ctl[2], rep[2], data[2], sock[2];
        if (::pipe(ctl) != 0 || ::pipe(rep) != 0 || ::pipe(data) != 0 ||
            ::socketpair(AF_UNIX, SOCK_STREAM, 0, sock) != 0) {
            std::abort();
        }
        (void)::fcntl(data[1], F_SETPIPE_SZ, 1 << 20); // the largest pipe an unprivileged user may ask for
        const int big = 4 << 20;
        (void)::setsockopt(sock[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
        (void)::setsockopt(sock[1], SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
        m_pid = ::fork();
        if (m_pid == 0) {
            ::close(ctl[1]);
            ::close(rep[0]);
            ::close(data[1]);
            ::close(sock[0]);
            serve(ctl[0], rep[1], data[0], sock[1]);
            ::_exit(0);
        }
        ::close(ctl[0]);
        ::close(rep[1]);
        ::close(data[0]);
        ::close(sock[1]);
        m_ctl = ctl[1];
        m_rep = rep[0];
        m_data = data[1];
        m_sock = sock[0];
    }
    reader(const reader&) = delete;
    reader& operator=(const reader&) = delete;
    ~reader()
    {
        command c{};
        c.how = method::stop;
        write_all(m_ctl, &c, sizeof c);
        ::waitpid(m_pid, nullptr, 0);
        for (int fd : {m_ctl, m_rep, m_data, m_sock}) {
            ::close(fd);
        }
    }

    void send(const command& c) { write_all(m_ctl, &c, sizeof c); }
    std::uint64_t answer()
    {
        std::uint64_t sum = 0;
        if (!read_all(m_rep, &sum, sizeof sum)) {
            std::abort();
        }
        return sum;
    }
    int data_fd() const { return m_data; }
    int sock_fd() const { return m_sock; }

private:
    static void serve(int ctl, int rep, int data, int sock)
    {
        std::vector<char> buf;
        command c{};
        while (read_all(ctl, &c, sizeof c) && c.how != method::stop) {
            std::uint64_t sum = 0;
            switch (c.how) {
            case method::shm_attach: {
                auto a = ndshm::shared_ndarray<const std::uint8_t>::attach(c.name);
                sum = touch(a.data(), a.size());
                break;
            }
            case method::pipe:
            case method::socket:
                buf.resize(c.size);
                read_all(c.how == method::pipe ? data : sock, buf.data(), c.size);
                sum = touch(buf.data(), c.size);
                break;
            case method::cereal_pipe: {
                fd_buf fb(data);
                std::istream in(&fb);
                std::vector<std::uint8_t> v;
                cereal::BinaryInputArchive ar(in);
                ar(v);
                sum = touch(v.data(), v.size());
                break;
            }
            case method::channel: {
                auto ch = ndshm::channel<std::uint8_t>::attach(c.name);
                for (std::uint32_t i = 0; i < c.count; ++i) {
                    auto s = ch.receive();
                    sum += c.size == 0 ? s.index() : touch(s.data(), s.size());
                }
                break;
            }
            case method::queue: {
                ndshm::options o;
                o.populate = true; // the receiver maps the pages in one call (see the processes section)
                auto q = ndshm::array_queue::open(c.name, o);
                auto a = q.pop<std::uint8_t>();
                sum = touch(a.data(), a.size());
                break;
            }
            case method::stop:
                break;
            }
            write_all(rep, &sum, sizeof sum);
        }
    }

    pid_t m_pid = 0;
    int m_ctl = -1, m_rep = -1, m_data = -1, m_sock = -1;
};

reader& the_reader()
{
    static reader r;
    return r;
}

command make(method how, std::uint64_t size)
{
    command c{};
    c.how = how;
    c.size = size;
    return c;
}

void BM_handoff_ndshm_create_attach(benchmark::State& state)
{
    const auto n = static_cast<std::size_t>(state.range(0));
    const std::vector<std::uint8_t> src(n, 1);
    auto& r = the_reader();
    for (auto _ : state) {
        auto a = ndshm::shared_ndarray<std::uint8_t>::from_array(src.data(), {n}); // fresh pages: cold
        command c = make(method::shm_attach, n);
        std::strncpy(c.name, a.name().c_str(), sizeof c.name - 1);
        r.send(c);
        benchmark::DoNotOptimize(r.answer());
    }
    state.SetBytesProcessed(state.iterations() * state.range(0));
}

void BM_handoff_channel(benchmark::State& state)
{
    const auto n = static_cast<std::size_t>(state.range(0));
    const std::vector<std::uint8_t> src(n, 1);
    auto ch = ndshm::channel<std::uint8_t>::create({n}, 4);
    auto& r = the_reader();
    // Warm-up outside the timing, then a steady stream: frames are written into pre-faulted slots.
    for (int round = 0; round < 2; ++round) {
        const std::uint32_t frames = round == 0 ? 8 : static_cast<std::uint32_t>(state.max_iterations);
        command c = make(method::channel, n);
        c.count = frames;
        std::strncpy(c.name, ch.name().c_str(), sizeof c.name - 1);
        r.send(c);
        if (round == 0) {
            for (std::uint32_t i = 0; i < frames; ++i) {
                auto s = ch.loan();
                std::memcpy(s.data(), src.data(), n);
                ch.publish(std::move(s));
            }
            r.answer();
            continue;
        }
        for (auto _ : state) {
            auto s = ch.loan();
            std::memcpy(s.data(), src.data(), n);
            ch.publish(std::move(s));
        }
        benchmark::DoNotOptimize(r.answer()); // the reader has read every frame
    }
    state.SetBytesProcessed(state.iterations() * state.range(0));
}

void BM_handoff_channel_latency(benchmark::State& state)
{
    // The handoff alone (loan, publish, receive, release), no bytes written or read: flat in size.
    const auto n = static_cast<std::size_t>(state.range(0));
    auto ch = ndshm::channel<std::uint8_t>::create({n}, 4);
    auto& r = the_reader();
    command c = make(method::channel, 0);
    c.count = static_cast<std::uint32_t>(state.max_iterations);
    std::strncpy(c.name, ch.name().c_str(), sizeof c.name - 1);
    r.send(c);
    for (auto _ : state) {
        ch.publish(ch.loan());
    }
    benchmark::DoNotOptimize(r.answer());
}

void BM_handoff_queue(benchmark::State& state)
{
    // The producer already holds a filled array (made outside the timing); only its handle moves,
    // and the reader pops it and reads every byte.
    const auto n = static_cast<std::size_t>(state.range(0));
    const std::vector<std::uint8_t> src(n, 1);
    auto q = ndshm::array_queue::create(4);
    auto& r = the_reader();
    for (auto _ : state) {
        state.PauseTiming();
        auto a = ndshm::shared_ndarray<std::uint8_t>::from_array(src.data(), {n});
        command c = make(method::queue, n);
        std::strncpy(c.name, q.name().c_str(), sizeof c.name - 1);
        state.ResumeTiming();
        q.push(std::move(a));
        r.send(c);
        benchmark::DoNotOptimize(r.answer());
    }
    state.SetBytesProcessed(state.iterations() * state.range(0));
}

void BM_handoff_pipe(benchmark::State& state)
{
    const auto n = static_cast<std::size_t>(state.range(0));
    const std::vector<std::uint8_t> src(n, 1);
    auto& r = the_reader();
    for (auto _ : state) {
        r.send(make(method::pipe, n));
        write_all(r.data_fd(), src.data(), n);
        benchmark::DoNotOptimize(r.answer());
    }
    state.SetBytesProcessed(state.iterations() * state.range(0));
}

void BM_handoff_unix_socket(benchmark::State& state)
{
    const auto n = static_cast<std::size_t>(state.range(0));
    const std::vector<std::uint8_t> src(n, 1);
    auto& r = the_reader();
    for (auto _ : state) {
        r.send(make(method::socket, n));
        write_all(r.sock_fd(), src.data(), n);
        benchmark::DoNotOptimize(r.answer());
    }
    state.SetBytesProcessed(state.iterations() * state.range(0));
}

void BM_handoff_cereal_pipe(benchmark::State& state)
{
    const auto n = static_cast<std::size_t>(state.range(0));
    const std::vector<std::uint8_t> src(n, 1);
    auto& r = the_reader();
    for (auto _ : state) {
        r.send(make(method::cereal_pipe, n));
        {
            fd_buf fb(r.data_fd());
            std::ostream out(&fb);
            cereal::BinaryOutputArchive ar(out);
            ar(src);
        }
        benchmark::DoNotOptimize(r.answer());
    }
    state.SetBytesProcessed(state.iterations() * state.range(0));
}

void BM_memcpy_warm(benchmark::State& state)
{
    const auto n = static_cast<std::size_t>(state.range(0));
    const std::vector<std::uint8_t> src(n, 1);
    std::vector<std::uint8_t> dst(n, 0);
    for (auto _ : state) {
        std::memcpy(dst.data(), src.data(), n);
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(state.iterations() * state.range(0));
}

void sizes(benchmark::internal::Benchmark* b)
{
    for (std::int64_t s : {4 * KiB, 256 * KiB, 4 * MiB, 64 * MiB, 256 * MiB}) {
        b->Arg(s);
    }
    b->Unit(benchmark::kMicrosecond)->UseRealTime();
}

} // namespace

BENCHMARK(BM_handoff_ndshm_create_attach)->Apply(sizes);
BENCHMARK(BM_handoff_channel)->Apply(sizes);
BENCHMARK(BM_handoff_channel_latency)->Apply(sizes);
BENCHMARK(BM_handoff_queue)->Apply(sizes);
BENCHMARK(BM_handoff_pipe)->Apply(sizes);
BENCHMARK(BM_handoff_unix_socket)->Apply(sizes);
BENCHMARK(BM_handoff_cereal_pipe)->Apply(sizes);
BENCHMARK(BM_memcpy_warm)->Apply(sizes);

BENCHMARK_MAIN();
