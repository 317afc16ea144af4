/// @file detail/sync.hpp
/// Locks in shared memory: ndshm's own lock (the per-array lock in the trailer, the array queue's and
/// the channel's locks). Its waits and wake-ups are futex-based (detail/wait.hpp).
///
/// Why not a process-shared robust pthread mutex (what ndshm used first): glibc keeps the mutex's
/// state in memory that every process with the segment can write, and trusts it. A stray write into
/// those bytes made pthread_mutex_lock hang forever or abort the process in a glibc assertion
/// (`mutex->__data.__owner == 0`), and a robust mutex only hands the lock on when its holder dies: a
/// holder that is stopped (SIGSTOP, Ctrl-Z, a debugger) blocked every other process, even in calls
/// meant to give up (try_pop, receive with a timeout), because those had to take the mutex first.
///
/// ndshm's lock is a futex word that holds the holder's thread id, beside a record of the holder
/// (pid, start time, pid namespace, and a check value over them). Every word read from shared memory
/// is checked before use: a word or record that cannot be valid is a format_error, never trusted. A
/// waiter sleeps on the futex with a timeout, so timed and try_ calls return on time whatever the
/// holder does; while it waits it checks, at growing intervals (1 ms to 50 ms), whether the holder
/// still lives, by the positive-evidence rule of liveness.hpp: a holder shown dead (no such thread, a
/// zombie, another start time) is taken over, and the new holder is told; a holder that cannot be
/// judged is waited for. An untimed wait ends with an error naming the holder once the holder has been
/// stopped for lock_tuning().stopped_holder (10 s), and with a format_error if the word names a live
/// thread whose record never appears (lock_tuning().unrecorded_holder, 1 s).
///
/// Why futexes and not process-shared condition variables: glibc (2.36 here) keeps per-waiter
/// bookkeeping inside a pthread_cond_t, and a waiter killed while it waits leaves it behind, after
/// which a later signal or broadcast can block forever. A futex word holds no waiter state (the kernel
/// keeps the wait list and cleans it up when a process dies), so a queue survives `kill -9` of any of
/// its users.
#ifndef NDSHM_DETAIL_SYNC_HPP
#define NDSHM_DETAIL_SYNC_HPP

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <string>

#include "../error.hpp"
#include "config.hpp"
#include "liveness.hpp"
#include "mix.hpp"
#include "sys.hpp"
#include "wait.hpp"

namespace ndshm::detail {

/// The lock's 64 bytes in shared memory (the trailer's lock area, and a field of the queue's and the
/// channel's control blocks). Little-endian, every field accessed atomically.
struct lock_area {
    std::uint32_t word;         //  0 futex word: 0 free, else the holder's thread id | lock_waiters
    std::uint32_t tag;          //  4 lock_tag: written when the lock is made, never changed
    std::uint32_t owner_tid;    //  8 the holder's thread id, written just after it took the word; 0 when free
    std::uint32_t owner_pid;    // 12 the holder's process id
    std::uint64_t owner_start;  // 16 the holder thread's start time, clock ticks since boot (0: unknown)
    std::uint64_t owner_pidns;  // 24 the holder's pid namespace, the inode of /proc/self/ns/pid (0: unknown)
    std::uint64_t owner_check;  // 32 lock_check_value() of the four fields above
    std::uint64_t takeovers;    // 40 times the lock was taken over from a holder that had died
    unsigned char reserved[16]; // 48 zero
};
static_assert(sizeof(lock_area) == 64, "the lock area is 64 bytes");

/// Bytes reserved for a lock in shared memory.
inline constexpr std::size_t lock_room = sizeof(lock_area);
/// "NDL1" read as a little-endian word: the format of the lock.
inline constexpr std::uint32_t lock_tag = 0x314c444e;
/// Bit set in the word while some process may be sleeping on it (so the holder's unlock wakes them).
inline constexpr std::uint32_t lock_waiters = 0x80000000u;
inline constexpr std::uint32_t lock_tid_mask = 0x3fffffffu;

/// Limits of waits for a lock (see the file comment). Tests shorten them; the library never changes them.
struct lock_limits {
    /// An untimed wait gives up (ndshm::error naming the holder) once the holder has been stopped this long.
    std::chrono::milliseconds stopped_holder{10000};
    /// A word naming a live thread whose record never names it for this long is corrupt (format_error).
    std::chrono::milliseconds unrecorded_holder{1000};
    /// The longest a waiter sleeps before it checks the holder again.
    std::chrono::milliseconds poll{50};
};

inline lock_limits& lock_tuning() noexcept
{
    static lock_limits limits;
    return limits;
}

/// Makes a free lock in `where` (64 bytes, 8-byte aligned). Before publication: no one else sees it yet.
inline void init_lock(void* where) noexcept
{
    std::memset(where, 0, sizeof(lock_area));
    static_cast<lock_area*>(where)->tag = lock_tag;
}

/// The check value of a holder's record: a stray write into the record is noticed, not believed.
inline std::uint64_t lock_check_value(std::uint32_t tid, std::uint32_t pid, std::uint64_t start,
                                      std::uint64_t pidns) noexcept
{
    return mix64(mix64((std::uint64_t(tid) << 32 | pid) ^ lock_tag) ^ mix64(start + 0x9e3779b97f4a7c15ull) ^ pidns);
}

/// The calling thread as a lock records it.
struct thread_identity {
    std::uint32_t tid = 0;
    std::uint32_t pid = 0;
    std::uint64_t start = 0;
    std::uint64_t pidns = 0;
};

/// The calling thread's identity, computed once per thread and process (a forked child computes its
/// own). A start time or namespace that could not be read (say, no descriptor free) is read again on
/// the next call.
inline const thread_identity& this_thread_identity() noexcept
{
    thread_local thread_identity me;
    const auto pid = static_cast<std::uint32_t>(current_pid());
    if (me.pid != pid) {
        me = thread_identity{};
        me.pid = pid;
        me.tid = current_tid();
    }
    if (me.start == 0) {
        me.start = process_start_time(static_cast<std::uint64_t>(me.tid));
    }
    if (me.pidns == 0) {
        me.pidns = pid_namespace_id();
    }
    return me;
}

/// What a lock attempt found.
enum class lock_status {
    acquired,   ///< locked; the previous holder released it normally
    owner_died, ///< locked; the previous holder died holding it, and was taken over
    timed_out,  ///< the deadline passed (for a try: someone holds it)
};

/// A copy of a lock's holder record, and whether it names the thread in the word.
struct lock_record {
    std::uint32_t word = 0;
    std::uint32_t tid = 0;
    std::uint32_t pid = 0;
    std::uint64_t start = 0;
    std::uint64_t pidns = 0;
    std::uint64_t check = 0;
    bool recorded = false; ///< the record names the thread in the word
    bool check_ok = false; ///< the record's check value matches it
};

/// Why a lock word or record cannot be valid, or an empty string.
NDSHM_DECL std::string lock_word_problem(std::uint32_t tag, std::uint32_t word);

/// Reads the holder record of a lock whose word was `word`, consistently (see write_owner).
NDSHM_DECL lock_record read_record(const lock_area& a, std::uint32_t word) noexcept;

/// Records the calling thread as the holder, just after it took the word. The tid goes last, so that
/// a reader that sees it before and after the other fields read them whole.
inline void write_owner(lock_area& a, const thread_identity& me) noexcept
{
    __atomic_store_n(&a.owner_tid, 0u, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    __atomic_store_n(&a.owner_pid, me.pid, __ATOMIC_RELAXED);
    __atomic_store_n(&a.owner_start, me.start, __ATOMIC_RELAXED);
    __atomic_store_n(&a.owner_pidns, me.pidns, __ATOMIC_RELAXED);
    __atomic_store_n(&a.owner_check, lock_check_value(me.tid, me.pid, me.start, me.pidns), __ATOMIC_RELAXED);
    __atomic_store_n(&a.owner_tid, me.tid, __ATOMIC_RELEASE);
}

/// The verdict on a lock's holder.
struct holder_check {
    lock_record record;
    process_check process; ///< the holder thread, judged by the positive-evidence rule
    std::string corrupt;   ///< non-empty: the record cannot be valid, and why
    bool other_namespace = false;
};

/// Judges the holder of a lock whose word is `word` (not 0, already checked by lock_word_problem).
/// `me_pidns`: the caller's pid namespace (0: unknown).
NDSHM_DECL holder_check judge_holder(const lock_area& a, std::uint32_t word, std::uint64_t me_pidns);

/// Names a lock in messages: the operation, the segment, and which lock ("the lock", "the queue's lock").
struct lock_context {
    const std::string& op;
    const std::string& name;
    const char* which;
};

[[noreturn]] NDSHM_DECL void raise_corrupt_lock(const lock_context& cx, const std::string& why);

/// How long a locker spins on a held lock before it sleeps on the futex.
inline constexpr std::chrono::microseconds lock_spin{5};

/// lock_until once the lock's first, uncontended attempt failed: the wait, the checks of the holder,
/// the take-over of a dead one and the errors. `me` is this_thread_identity().
NDSHM_DECL lock_status lock_until_contended(lock_area& a, std::chrono::steady_clock::time_point deadline,
                                            const lock_context& cx, const thread_identity& me);

/// Takes the lock at `a` for the calling thread, waiting at most until `deadline`
/// (time_point::max(): no limit, see the file comment for the bounds of an untimed wait).
/// @throws format_error if the lock is corrupt; error (EDEADLK) if this thread holds it already;
/// error (ETIMEDOUT) if an untimed wait found the holder stopped for longer than the limit
inline lock_status lock_until(lock_area& a, std::chrono::steady_clock::time_point deadline, const lock_context& cx)
{
    const thread_identity& me = this_thread_identity();
    const std::uint32_t tag = __atomic_load_n(&a.tag, __ATOMIC_RELAXED);
    std::uint32_t free_word = 0;
    if (tag == lock_tag &&
        __atomic_compare_exchange_n(&a.word, &free_word, me.tid, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
        write_owner(a, me);
        return lock_status::acquired;
    }
    return lock_until_contended(a, deadline, cx, me);
}

/// Releases the lock if the calling thread holds it; returns false (and touches nothing) if it does
/// not (it was never taken, or the word was overwritten or taken over meanwhile).
inline bool unlock(lock_area& a) noexcept
{
    const thread_identity& me = this_thread_identity();
    std::uint32_t v = __atomic_load_n(&a.word, __ATOMIC_RELAXED);
    if ((v & lock_tid_mask) != me.tid || __atomic_load_n(&a.tag, __ATOMIC_RELAXED) != lock_tag) {
        return false;
    }
    __atomic_store_n(&a.owner_tid, 0u, __ATOMIC_RELAXED);
    while (!__atomic_compare_exchange_n(&a.word, &v, 0u, false, __ATOMIC_RELEASE, __ATOMIC_RELAXED)) {
        if ((v & lock_tid_mask) != me.tid) {
            return false;
        }
    }
    if ((v & lock_waiters) != 0) {
        futex_wake_all(&a.word);
    }
    return true;
}

/// A lock held for a scope (the queue's and the channel's). Acquisition may time out: check locked().
class held_lock {
public:
    held_lock(lock_area& a, std::chrono::steady_clock::time_point deadline, const lock_context& cx) : m_area(a)
    {
        m_status = lock_until(a, deadline, cx);
        m_locked = m_status != lock_status::timed_out;
    }
    held_lock(const held_lock&) = delete;
    held_lock& operator=(const held_lock&) = delete;
    ~held_lock() { unlock(); }
    bool locked() const noexcept { return m_locked; }
    lock_status status() const noexcept { return m_status; }
    void unlock() noexcept
    {
        if (m_locked) {
            (void)detail::unlock(m_area);
            m_locked = false;
        }
    }
    /// Takes the lock again, waiting at most until `deadline`; returns whether it holds it.
    bool relock(std::chrono::steady_clock::time_point deadline, const lock_context& cx)
    {
        if (!m_locked) {
            m_status = lock_until(m_area, deadline, cx);
            m_locked = m_status != lock_status::timed_out;
        }
        return m_locked;
    }

private:
    lock_area& m_area;
    lock_status m_status = lock_status::timed_out;
    bool m_locked = false;
};

/// How long a try_ call of the queue or the channel may wait for their lock: a peer holds it for
/// microseconds, but may be preempted while it does.
inline constexpr std::chrono::milliseconds try_lock_grace{10};

/// The deadline for taking a lock in a call whose own deadline is `deadline`: at least try_lock_grace
/// from now.
inline std::chrono::steady_clock::time_point lock_deadline(std::chrono::steady_clock::time_point deadline) noexcept
{
    if (deadline == std::chrono::steady_clock::time_point::max()) {
        return deadline; // no clock read for an untimed call
    }
    const auto floor = std::chrono::steady_clock::now() + try_lock_grace;
    return std::max(deadline, floor);
}

/// A lock as inspect sees it in a copy of its bytes: whether it is valid, and who holds it.
struct lock_report {
    std::string problem; ///< why it is corrupt; empty if it is valid
    bool held = false;
    std::uint32_t tid = 0;
    std::uint32_t pid = 0; ///< from the holder's record, 0 if not recorded
    std::uint64_t takeovers = 0;
    std::string holder; ///< the holder's liveness, as judge_holder tells it
    liveness holder_state = liveness::unknown;
    bool holder_stopped = false;
};

/// Checks a copy of a lock's 64 bytes (read from a segment without mapping it).
NDSHM_DECL lock_report describe_lock(const unsigned char* bytes);

} // namespace ndshm::detail

#if NDSHM_DEFINITIONS
namespace ndshm::detail {

std::string lock_word_problem(std::uint32_t tag, std::uint32_t word)
{
    if (tag != lock_tag) {
        return "its format tag is " + std::to_string(tag) + ", not " + std::to_string(lock_tag) +
               " (the bytes were overwritten, or an older ndshm made the segment)";
    }
    if (word == 0) {
        return {};
    }
    const std::uint32_t tid = word & lock_tid_mask;
    if ((word & ~(lock_tid_mask | lock_waiters)) != 0 || !valid_pid(tid)) {
        return "its word " + std::to_string(word) + " names no thread";
    }
    return {};
}

lock_record read_record(const lock_area& a, std::uint32_t word) noexcept
{
    lock_record r;
    r.word = word;
    const std::uint32_t t1 = __atomic_load_n(&a.owner_tid, __ATOMIC_ACQUIRE);
    r.pid = __atomic_load_n(&a.owner_pid, __ATOMIC_RELAXED);
    r.start = __atomic_load_n(&a.owner_start, __ATOMIC_RELAXED);
    r.pidns = __atomic_load_n(&a.owner_pidns, __ATOMIC_RELAXED);
    r.check = __atomic_load_n(&a.owner_check, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    const std::uint32_t t2 = __atomic_load_n(&a.owner_tid, __ATOMIC_RELAXED);
    r.tid = t1;
    r.recorded = t1 == t2 && t1 != 0 && t1 == (word & lock_tid_mask);
    r.check_ok = r.check == lock_check_value(t1, r.pid, r.start, r.pidns);
    return r;
}

holder_check judge_holder(const lock_area& a, std::uint32_t word, std::uint64_t me_pidns)
{
    holder_check h;
    h.record = read_record(a, word);
    const std::uint32_t tid = word & lock_tid_mask;
    if (h.record.recorded) {
        if (!h.record.check_ok) {
            h.corrupt = "the record of its holder (thread " + std::to_string(tid) + ") fails its check";
            return h;
        }
        if (h.record.pidns != 0 && me_pidns != 0 && h.record.pidns != me_pidns) {
            h.other_namespace = true;
            h.process.detail = "held by thread " + std::to_string(tid) + " of process " + std::to_string(h.record.pid) +
                               " in another pid namespace, which cannot be checked";
            return h;
        }
    }
    h.process = check_process(tid, h.record.recorded ? h.record.start : 0);
    return h;
}

void raise_corrupt_lock(const lock_context& cx, const std::string& why)
{
    raise<format_error>(cx.op, cx.name, std::string(cx.which) + " is corrupt: " + why,
                        "something other than ndshm wrote into the segment; remove it and create it again",
                        make_error_code(errc::corrupt_control));
}

lock_status lock_until_contended(lock_area& a, std::chrono::steady_clock::time_point deadline, const lock_context& cx,
                                 const thread_identity& me)
{
    using clock = std::chrono::steady_clock;
    const lock_limits limits = lock_tuning();
    const bool untimed = deadline == clock::time_point::max();
    std::uint32_t want = me.tid;    // once this thread has slept, it takes the lock with the waiters bit set
    auto next_check = clock::now(); // a try judges the holder at once; a wait after 1 ms, then less often
    auto interval = std::chrono::milliseconds(1);
    bool first = true;
    bool spun = false;
    std::uint32_t watched = 0; // the word the two timers below refer to
    clock::time_point stopped_since{}, unrecorded_since{};
    bool stopped = false, unrecorded = false;
    for (;;) {
        std::uint32_t v = __atomic_load_n(&a.word, __ATOMIC_ACQUIRE);
        if (const std::string why = lock_word_problem(__atomic_load_n(&a.tag, __ATOMIC_RELAXED), v); !why.empty()) {
            raise_corrupt_lock(cx, why);
        }
        if (v == 0) {
            if (__atomic_compare_exchange_n(&a.word, &v, want, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
                write_owner(a, me);
                return lock_status::acquired;
            }
            continue;
        }
        const std::uint32_t tid = v & lock_tid_mask;
        if (tid == me.tid) {
            raise<error>(cx.op, cx.name, std::string("this thread already holds it (") + cx.which + ")",
                         "unlock it first; the lock is not recursive", errno_code(EDEADLK));
        }
        auto now = clock::now();
        const bool expired = now >= deadline;
        if (first && !expired) {
            next_check = now + interval; // an ordinary holder lets go within microseconds: no /proc read for it
        }
        first = false;
        if (now >= next_check || expired) {
            const holder_check h = judge_holder(a, v, me.pidns);
            if (!h.corrupt.empty()) {
                raise_corrupt_lock(cx, h.corrupt);
            }
            if (__atomic_load_n(&a.word, __ATOMIC_ACQUIRE) != v) {
                continue; // it changed hands meanwhile: the verdict is about someone else
            }
            if (h.process.state == liveness::dead) {
                // Positive evidence that the thread in the word is gone: take the lock over. Only one
                // waiter's exchange succeeds; the word keeps the waiters bit for those still asleep.
                if (__atomic_compare_exchange_n(&a.word, &v, me.tid | lock_waiters, false, __ATOMIC_ACQUIRE,
                                                __ATOMIC_RELAXED)) {
                    write_owner(a, me);
                    __atomic_fetch_add(&a.takeovers, 1u, __ATOMIC_RELAXED);
                    return lock_status::owner_died;
                }
                continue;
            }
            if (v != watched) {
                watched = v;
                stopped = unrecorded = false;
            }
            if (h.process.stopped()) {
                if (!stopped) {
                    stopped = true;
                    stopped_since = now;
                }
                if (untimed && now - stopped_since >= limits.stopped_holder) {
                    raise<error>(cx.op, cx.name,
                                 std::string(cx.which) + " has been held for more than " +
                                     std::to_string(limits.stopped_holder.count()) + " ms by thread " +
                                     std::to_string(tid) + " of process " +
                                     std::to_string(h.record.recorded ? h.record.pid : tid) +
                                     ", which is stopped (SIGSTOP, Ctrl-Z or a debugger)",
                                 "resume it (kill -CONT " + std::to_string(h.record.recorded ? h.record.pid : tid) +
                                     ") or end it; the timed and try_ calls give up at their deadline instead",
                                 errno_code(ETIMEDOUT));
                }
            } else {
                stopped = false;
                if (!h.record.recorded && h.process.state == liveness::alive) {
                    if (!unrecorded) {
                        unrecorded = true;
                        unrecorded_since = now;
                    }
                    if (now - unrecorded_since >= limits.unrecorded_holder) {
                        raise_corrupt_lock(cx, "its word names thread " + std::to_string(tid) +
                                                   ", which runs but never recorded itself as the holder");
                    }
                } else {
                    unrecorded = false;
                }
            }
            interval = std::min(interval * 2, std::max(limits.poll, std::chrono::milliseconds(1)));
            next_check = now + interval;
        }
        if (expired) {
            return lock_status::timed_out;
        }
        if (!spun) {
            // A holder keeps the lock for a microsecond or so: wait that long before sleeping, so that an
            // ordinary handover costs neither side a futex call.
            spun = true;
            const auto until = std::min(deadline, clock::now() + lock_spin);
            for (unsigned i = 1; __atomic_load_n(&a.word, __ATOMIC_RELAXED) != 0; ++i) {
                spin_pause();
                if ((i & 15u) == 0 && clock::now() >= until) {
                    break;
                }
            }
            continue;
        }
        if ((v & lock_waiters) == 0) {
            if (!__atomic_compare_exchange_n(&a.word, &v, v | lock_waiters, false, __ATOMIC_RELAXED,
                                             __ATOMIC_RELAXED)) {
                continue;
            }
            v |= lock_waiters;
        }
        want = me.tid | lock_waiters;
        futex_wait(&a.word, v, std::min(deadline, next_check));
    }
}

lock_report describe_lock(const unsigned char* bytes)
{
    lock_area a;
    std::memcpy(&a, bytes, sizeof a);
    lock_report r;
    r.takeovers = a.takeovers;
    r.problem = lock_word_problem(a.tag, a.word);
    if (!r.problem.empty() || a.word == 0) {
        return r;
    }
    r.held = true;
    r.tid = a.word & lock_tid_mask;
    const holder_check h = judge_holder(a, a.word, this_thread_identity().pidns);
    if (!h.corrupt.empty()) {
        r.problem = h.corrupt;
        return r;
    }
    r.pid = h.record.recorded ? h.record.pid : 0;
    r.holder = h.process.detail;
    r.holder_state = h.process.state;
    r.holder_stopped = h.process.stopped();
    return r;
}

} // namespace ndshm::detail
#endif // NDSHM_DEFINITIONS

#endif
