// A stray writer scribbles on a lock inside a queue's or a channel's control block: every operation that
// takes that lock must report it as ndshm::format_error, promptly, never abort and never hang.
#ifndef NDSHM_TESTS_LOCK_CORRUPTION_HPP
#define NDSHM_TESTS_LOCK_CORRUPTION_HPP

#include <ndshm/detail/sync.hpp>
#include <ndshm/error.hpp>

#include "test_util.hpp"

#include <catch2/catch.hpp>

#include <cstddef>
#include <cstring>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace test_util {

/// An operation on the damaged segment and what it is called in a failure report.
using labelled_call = std::pair<std::string, std::function<void()>>;

/// Overwrites `lock` (a lock in the control block of the segment `name`, seen through a mapping of the
/// test's own, as a stray writer in another process would write it) in three ways: a wrong format tag,
/// a word with a bit no thread id has, and a word naming a live process (init) whose holder record fails
/// its check. After each, every call of `calls` must throw ndshm::format_error naming the segment
/// within `bound_ms`. The lock's bytes are put back at the end.
inline void check_corrupt_lock_refused(ndshm::detail::lock_area& lock, const std::string& name,
                                       const std::vector<labelled_call>& calls, double bound_ms = 2000)
{
    const ndshm::detail::lock_area saved = lock;
    REQUIRE(saved.tag == ndshm::detail::lock_tag); // it is a lock

    const std::vector<std::pair<std::string, std::function<void(ndshm::detail::lock_area&)>>> damages = {
        {"a wrong format tag", [](auto& l) { l.tag = 0x12345678; }},
        {"a word with an unknown bit", [](auto& l) { l.word = 0x40000005; }},
        {"a live holder whose record fails its check",
         [](auto& l) {
             l.word = 1; // init: alive for as long as the system runs
             l.owner_tid = 1;
             l.owner_pid = 1;
             l.owner_check = 42;
         }},
    };
    for (const auto& damage : damages) {
        std::memcpy(&lock, &saved, sizeof lock);
        damage.second(lock);
        for (const auto& call : calls) {
            INFO(damage.first << ": " << call.first);
            bool refused = false;
            const double ms = elapsed_ms([&] {
                try {
                    call.second();
                } catch (const ndshm::format_error& e) {
                    refused = std::string(e.what()).find(name) != std::string::npos;
                }
            });
            CHECK(refused);
            CHECK(ms < bound_ms);
        }
    }
    std::memcpy(&lock, &saved, sizeof lock);
}

} // namespace test_util

#endif
