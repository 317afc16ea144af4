// The C++ side of the Python module's tests (tests/python/): a separate program that the pytest suite
// spawns, talking to it over stdin and stdout (one line per event, never a sleep).
//
//   ndshm_python_peer arrays-make SHAPE...        creates an array of every dtype in C and in Fortran order,
//                                                  filled with the test pattern; prints "DTYPE ORDER NAME" for
//                                                  each, then "ready"; on the line "check" checks that each
//                                                  now holds the pattern shifted by one, prints "ok", and exits
//                                                  (its last handles unlink the arrays)
//   ndshm_python_peer arrays-check DTYPE ORDER NAME   attaches NAME as shared_ndarray<DTYPE>, checks its order
//                                                  and the pattern, then writes the pattern shifted by one
//   ndshm_python_peer queue-produce QUEUE COUNT     pushes COUNT arrays (array i: the i-th dtype in turn,
//                                                  shape (i + 1, 3), the pattern shifted by i), prints each
//                                                  name, closes the queue
//   ndshm_python_peer queue-consume QUEUE           pops until the queue is closed and drained, checks each as
//                                                  queue-produce makes them, prints "popped NAME DTYPE"
//   ndshm_python_peer channel-produce COUNT SLOTS   creates a float32 channel of SLOTS slots of (4, 5), prints
//                                                  "channel NAME", publishes COUNT frames (frame i holds
//                                                  1000 i + k at flat index k), closes it, waits for "done"
//   ndshm_python_peer channel-consume NAME COUNT    receives frames from a float32 channel until it is closed
//                                                  and drained, checks them as above, expects COUNT
//   ndshm_python_peer lock-hold NAME                takes the lock of NAME, prints "locked", then waits for
//                                                  the end of its input (or to be killed) without unlocking
//   ndshm_python_peer lock-count NAME TIMES         adds 1 to element 0 of the int64 array NAME TIMES times,
//                                                  each under its lock
//   ndshm_python_peer error OPERATION NAME          runs OPERATION (attach, attach-float64, pop-float64,
//                                                  channel-int16, create) on NAME and prints the exception's
//                                                  class and message: "not_found<TAB>ndshm: ..."
//
// Exit status 0 when every check passed; 1 on a failed check, 2 on an exception, 64 on bad usage.
#include <ndshm/all.hpp>

#include "test_util.hpp"

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

namespace {

constexpr ndshm::dtype all_dtypes[] = {
    ndshm::dtype::bool_,      ndshm::dtype::int8,    ndshm::dtype::int16,   ndshm::dtype::int32,
    ndshm::dtype::int64,      ndshm::dtype::uint8,   ndshm::dtype::uint16,  ndshm::dtype::uint32,
    ndshm::dtype::uint64,     ndshm::dtype::float32, ndshm::dtype::float64, ndshm::dtype::complex64,
    ndshm::dtype::complex128,
};

template <class F>
decltype(auto) with_type(ndshm::dtype t, F&& f)
{
    switch (t) {
    case ndshm::dtype::bool_:
        return f(bool{});
    case ndshm::dtype::int8:
        return f(std::int8_t{});
    case ndshm::dtype::int16:
        return f(std::int16_t{});
    case ndshm::dtype::int32:
        return f(std::int32_t{});
    case ndshm::dtype::int64:
        return f(std::int64_t{});
    case ndshm::dtype::uint8:
        return f(std::uint8_t{});
    case ndshm::dtype::uint16:
        return f(std::uint16_t{});
    case ndshm::dtype::uint32:
        return f(std::uint32_t{});
    case ndshm::dtype::uint64:
        return f(std::uint64_t{});
    case ndshm::dtype::float32:
        return f(float{});
    case ndshm::dtype::float64:
        return f(double{});
    case ndshm::dtype::complex64:
        return f(std::complex<float>{});
    case ndshm::dtype::complex128:
        break;
    }
    return f(std::complex<double>{});
}

ndshm::dtype parse_dtype(const std::string& s)
{
    for (const ndshm::dtype t : all_dtypes) {
        if (s == ndshm::dtype_name(t)) {
            return t;
        }
    }
    throw std::invalid_argument("unknown dtype " + s);
}

/// Offset in elements of the element whose C-order flat index is `k`, in an array of `shape` and order.
std::size_t storage_offset(std::size_t k, const ndshm::shape_type& shape, bool fortran)
{
    const std::size_t n = shape.size();
    std::vector<std::size_t> index(n);
    for (std::size_t j = n; j-- > 0;) {
        index[j] = shape[j] == 0 ? 0 : k % shape[j];
        k = shape[j] == 0 ? 0 : k / shape[j];
    }
    std::size_t off = 0, step = 1;
    for (std::size_t j = 0; j < n; ++j) {
        const std::size_t d = fortran ? j : n - 1 - j;
        off += index[d] * step;
        step *= shape[d];
    }
    return off;
}

/// Writes pattern_value(k + shift) at every element, k its C-order flat index.
template <class T>
void fill(ndshm::shared_ndarray<T>& a, std::size_t shift)
{
    for (std::size_t k = 0; k < a.size(); ++k) {
        a.data()[storage_offset(k, a.shape(), a.fortran_order())] = test_util::pattern_value<T>(k + shift);
    }
}

/// True if every element holds pattern_value(k + shift); says where it does not.
template <class T>
bool holds(const ndshm::shared_ndarray<T>& a, std::size_t shift)
{
    using V = std::remove_const_t<T>;
    for (std::size_t k = 0; k < a.size(); ++k) {
        if (a.data()[storage_offset(k, a.shape(), a.fortran_order())] != test_util::pattern_value<V>(k + shift)) {
            std::fprintf(stderr, "peer: '%s' (%s): element %zu is wrong\n", a.name().c_str(),
                         ndshm::dtype_name(ndshm::dtype_of<T>), k);
            return false;
        }
    }
    return true;
}

std::string next_line()
{
    std::string line;
    if (!std::getline(std::cin, line)) {
        return {};
    }
    return line;
}

int arrays_make(const ndshm::shape_type& shape)
{
    std::vector<std::shared_ptr<void>> keep;
    std::vector<std::function<bool()>> checks;
    for (const ndshm::dtype t : all_dtypes) {
        for (const bool fortran : {false, true}) {
            with_type(t, [&](auto v) {
                using T = decltype(v);
                auto a = std::make_shared<ndshm::shared_ndarray<T>>(
                    ndshm::shared_ndarray<T>::create(shape, fortran ? ndshm::order::fortran : ndshm::order::c));
                fill(*a, 0);
                std::printf("%s %s %s\n", ndshm::dtype_name(t), fortran ? "F" : "C", a->name().c_str());
                keep.push_back(a);
                checks.push_back([a] { return holds(*a, 1); });
            });
        }
    }
    std::printf("ready\n");
    std::fflush(stdout);
    if (next_line() != "check") {
        return 1;
    }
    bool ok = true;
    for (const auto& check : checks) {
        ok = check() && ok;
    }
    std::printf(ok ? "ok\n" : "failed\n");
    return ok ? 0 : 1;
}

int arrays_check(const std::string& type, const std::string& order, const std::string& name)
{
    return with_type(parse_dtype(type), [&](auto v) {
        using T = decltype(v);
        auto a = ndshm::shared_ndarray<T>::attach(name);
        if (a.fortran_order() != (order == "F")) {
            std::fprintf(stderr, "peer: '%s' is in the wrong order\n", name.c_str());
            return 1;
        }
        if (!holds(a, 0)) {
            return 1;
        }
        fill(a, 1);
        return 0;
    });
}

int queue_produce(const std::string& queue, std::size_t count)
{
    auto q = ndshm::array_queue::attach(queue);
    for (std::size_t i = 0; i < count; ++i) {
        const ndshm::dtype t = all_dtypes[i % (sizeof all_dtypes / sizeof all_dtypes[0])];
        with_type(t, [&](auto v) {
            using T = decltype(v);
            auto a = ndshm::shared_ndarray<T>::create({i + 1, 3});
            fill(a, i);
            std::printf("pushed %s\n", a.name().c_str());
            std::fflush(stdout);
            q.push(std::move(a));
        });
    }
    q.close();
    return 0;
}

int queue_consume(const std::string& queue)
{
    auto q = ndshm::array_queue::attach(queue);
    bool ok = true;
    for (std::size_t i = 0;; ++i) {
        // front_dtype() is empty while the queue is empty: pop (waiting) as any type first, then as the
        // type the queue says, as ndshm.Queue.pop does.
        ndshm::dtype t = all_dtypes[i % (sizeof all_dtypes / sizeof all_dtypes[0])];
        bool more = true;
        bool done = false;
        while (!done) {
            try {
                with_type(t, [&](auto v) {
                    using T = decltype(v);
                    auto a = q.pop<T>();
                    done = true;
                    if (!a) {
                        more = false;
                        return;
                    }
                    const bool good = a.shape() == ndshm::shape_type{i + 1, 3} && holds(a, i);
                    ok = ok && good;
                    std::printf("popped %s %s%s\n", a.name().c_str(), ndshm::dtype_name(t), good ? "" : " WRONG");
                    std::fflush(stdout);
                });
            } catch (const ndshm::dtype_mismatch&) {
                const auto next = q.front_dtype();
                if (next) {
                    t = *next;
                }
            }
        }
        if (!more) {
            break;
        }
    }
    return ok ? 0 : 1;
}

float frame_value(std::size_t frame, std::size_t k) { return static_cast<float>(1000 * frame + k); }

int channel_produce(std::size_t count, std::size_t slots)
{
    auto ch = ndshm::channel<float>::create({4, 5}, slots);
    std::printf("channel %s\n", ch.name().c_str());
    std::fflush(stdout);
    for (std::size_t i = 0; i < count; ++i) {
        auto s = ch.loan();
        for (std::size_t k = 0; k < s.size(); ++k) {
            s.data()[k] = frame_value(i, k);
        }
        ch.publish(std::move(s));
    }
    ch.close();
    std::printf("closed\n");
    std::fflush(stdout);
    return next_line() == "done" ? 0 : 1;
}

int channel_consume(const std::string& name, std::size_t count)
{
    auto ch = ndshm::channel<float>::attach(name);
    std::size_t received = 0;
    bool ok = true;
    while (auto s = ch.receive()) {
        for (std::size_t k = 0; k < s.size(); ++k) {
            ok = ok && s.array().data()[k] == frame_value(received, k);
        }
        ++received;
    }
    std::printf("received %zu\n", received);
    return ok && received == count ? 0 : 1;
}

int lock_hold(const std::string& name)
{
    const auto any = ndshm::attach_any(name);
    auto lock = any.visit([](const auto& a) { return std::make_unique<ndshm::array_lock>(a); });
    lock->lock();
    std::printf("locked\n");
    std::fflush(stdout);
    (void)next_line(); // until killed, or the end of the input
    std::fflush(stdout);
    ::_exit(0); // still holding the lock: a holder that dies
}

int lock_count(const std::string& name, std::size_t times)
{
    auto a = ndshm::shared_ndarray<std::int64_t>::attach(name);
    ndshm::array_lock lock(a);
    for (std::size_t i = 0; i < times; ++i) {
        std::lock_guard<ndshm::array_lock> hold(lock);
        a(0) += 1;
    }
    return 0;
}

int error(const std::string& op, const std::string& name)
{
    try {
        if (op == "attach") {
            (void)ndshm::attach_any(name);
        } else if (op == "attach-float64") {
            (void)ndshm::shared_ndarray<double>::attach(name);
        } else if (op == "pop-float64") {
            (void)ndshm::array_queue::attach(name).pop<double>(std::chrono::milliseconds(0));
        } else if (op == "channel-int16") {
            (void)ndshm::channel<std::int16_t>::attach(name);
        } else if (op == "create") {
            ndshm::options opt;
            opt.name = name;
            (void)ndshm::shared_ndarray<double>::create({1}, opt);
        } else {
            return 64;
        }
    } catch (const ndshm::not_found& e) {
        std::printf("not_found\t%s\n", e.what());
        return 0;
    } catch (const ndshm::already_exists& e) {
        std::printf("already_exists\t%s\n", e.what());
        return 0;
    } catch (const ndshm::permission_denied& e) {
        std::printf("permission_denied\t%s\n", e.what());
        return 0;
    } catch (const ndshm::dtype_mismatch& e) {
        std::printf("dtype_mismatch\t%s\n", e.what());
        return 0;
    } catch (const ndshm::format_error& e) {
        std::printf("format_error\t%s\n", e.what());
        return 0;
    } catch (const ndshm::error& e) {
        std::printf("error\t%s\n", e.what());
        return 0;
    }
    std::printf("none\t\n");
    return 0;
}

} // namespace

int main(int argc, char** argv)
{
    const std::vector<std::string> args(argv + 1, argv + argc);
    const auto n = args.size();
    try {
        const std::string cmd = n > 0 ? args[0] : "";
        if (cmd == "arrays-make" && n >= 1) {
            ndshm::shape_type shape;
            for (std::size_t i = 1; i < n; ++i) {
                shape.push_back(std::stoul(args[i]));
            }
            return arrays_make(shape);
        }
        if (cmd == "arrays-check" && n == 4) {
            return arrays_check(args[1], args[2], args[3]);
        }
        if (cmd == "queue-produce" && n == 3) {
            return queue_produce(args[1], std::stoul(args[2]));
        }
        if (cmd == "queue-consume" && n == 2) {
            return queue_consume(args[1]);
        }
        if (cmd == "channel-produce" && n == 3) {
            return channel_produce(std::stoul(args[1]), std::stoul(args[2]));
        }
        if (cmd == "channel-consume" && n == 3) {
            return channel_consume(args[1], std::stoul(args[2]));
        }
        if (cmd == "lock-hold" && n == 2) {
            return lock_hold(args[1]);
        }
        if (cmd == "lock-count" && n == 3) {
            return lock_count(args[1], std::stoul(args[2]));
        }
        if (cmd == "error" && n == 3) {
            return error(args[1], args[2]);
        }
        std::fprintf(stderr, "usage: see the comment at the top of tests/python_peer.cpp\n");
        return 64;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "peer: %s\n", e.what());
        return 2;
    }
}
