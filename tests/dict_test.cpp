// ndshm::shared_dict: the dict API and every dtype, dtype mismatches, capacity, empty handles, lifetime
// (owner, forked children, persist, gc), several processes changing and reading one dict at once,
// writers killed with SIGKILL in the middle of a change, damaged tables, and what inspect and the ndshm
// tool say. Processes synchronise on pipe events and on state in shared memory, never on sleeps. Most
// tests keep their dict in a private directory backend, so that they can count every segment made.
#include <ndshm/dict.hpp>
#include <ndshm/inspect.hpp>
#include <ndshm/list.hpp>
#include <ndshm/segment.hpp>

#include "collection_util.hpp"
#include "test_util.hpp"
#include "tools_util.hpp"

#include <catch2/catch.hpp>

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <complex>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

using collection_util::is_stamp;
using collection_util::raw_table;
using collection_util::stamp;
using collection_util::temp_dir;
using ndshm::shared_dict;
using ndshm::shared_ndarray;

namespace {

/// A flag in memory shared with forked children (MAP_SHARED | MAP_ANONYMOUS).
class shared_flag {
public:
    shared_flag()
    {
        void* p = ::mmap(nullptr, sizeof(std::uint32_t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            throw std::runtime_error("mmap failed");
        }
        m_word = static_cast<std::uint32_t*>(p);
        *m_word = 0;
    }
    shared_flag(const shared_flag&) = delete;
    shared_flag& operator=(const shared_flag&) = delete;
    ~shared_flag() { ::munmap(m_word, sizeof(std::uint32_t)); }
    void set() { __atomic_store_n(m_word, 1u, __ATOMIC_RELEASE); }
    bool is_set() const { return __atomic_load_n(m_word, __ATOMIC_ACQUIRE) != 0; }

private:
    std::uint32_t* m_word;
};

template <class T>
void check_roundtrip(shared_dict& d, const std::string& key)
{
    xt::xarray<T> a = xt::xarray<T>::from_shape({2, 3});
    for (std::size_t k = 0; k < a.size(); ++k) {
        a.flat(k) = test_util::pattern_value<T>(k);
    }
    d.assign(key, a);
    auto b = d.get<T>(key);
    CHECK(b.dtype() == ndshm::dtype_of<T>);
    CHECK(b.shape() == ndshm::shape_type{2, 3});
    CHECK((b.copy() == a));
    auto any = d[key];
    CHECK(any.dtype() == ndshm::dtype_of<T>);
}

} // namespace

TEST_CASE("a dict maps keys to shared arrays of any dtype", "[dict]")
{
    auto d = shared_dict::create(16);
    CHECK(d.name().rfind("ndshm_", 0) == 0);
    CHECK(d.name().size() <= 30);
    CHECK(d.capacity() == 16);
    CHECK(d.size() == 0);
    CHECK(d.empty());
    struct stat st {};
    REQUIRE(::stat(("/dev/shm/" + d.name()).c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);

    check_roundtrip<bool>(d, "bool");
    check_roundtrip<std::int8_t>(d, "int8");
    check_roundtrip<std::int16_t>(d, "int16");
    check_roundtrip<std::int32_t>(d, "int32");
    check_roundtrip<std::int64_t>(d, "int64");
    check_roundtrip<std::uint8_t>(d, "uint8");
    check_roundtrip<std::uint16_t>(d, "uint16");
    check_roundtrip<std::uint32_t>(d, "uint32");
    check_roundtrip<std::uint64_t>(d, "uint64");
    check_roundtrip<float>(d, "float32");
    check_roundtrip<double>(d, "float64");
    check_roundtrip<std::complex<float>>(d, "complex64");
    check_roundtrip<std::complex<double>>(d, "complex128");
    CHECK(d.size() == 13);

    // Every entry is an array segment of its own, mode 0600, that NumPy could load.
    auto e = d.get<double>("float64");
    REQUIRE(::stat(("/dev/shm/" + e.name()).c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    CHECK(ndshm::attach_any(e.name()).dtype() == ndshm::dtype::float64);

    const auto keys = d.keys();
    CHECK(keys.front() == "bool"); // insertion order
    CHECK(keys.back() == "complex128");
    CHECK(d.contains("int8"));
    CHECK_FALSE(d.contains("nothing"));
    CHECK(d.find<double>("nothing").empty());
    CHECK_THROWS_AS(d.get<double>("nothing"), ndshm::not_found);
    CHECK_THROWS_WITH(d.get("nothing"), Catch::Contains("no key 'nothing'"));
}

TEST_CASE("assign, insert, erase, pop, clear and update change the dict", "[dict]")
{
    auto d = shared_dict::create(8);
    d.assign("a", xt::xarray<double>{1, 2, 3});
    auto old = d.get<double>("a");
    d.assign("a", xt::xarray<double>{4, 5});
    CHECK(d.size() == 1);
    CHECK((d.get<double>("a").copy() == xt::xarray<double>{4, 5}));
    CHECK((old.copy() == xt::xarray<double>{1, 2, 3})); // the old entry's handle stays valid
    CHECK_FALSE(test_util::shm_exists(old.name()));     // but its segment left with the entry

    CHECK_FALSE(d.insert("a", xt::xarray<double>{9}));
    CHECK(d.get<double>("a").size() == 2);
    CHECK(d.insert("b", xt::xarray<float>{{1, 2}, {3, 4}}));

    // A shared_ndarray goes in as a copy, in its memory order; an adopted one without a copy.
    auto f = shared_ndarray<std::int32_t>::create({2, 3}, ndshm::order::fortran);
    f(1, 2) = 7;
    d.assign("fortran", f);
    auto fc = d.get<std::int32_t>("fortran");
    CHECK(fc.fortran_order());
    CHECK(fc(1, 2) == 7);
    CHECK(fc.name() != f.name());
    auto mine = shared_ndarray<double>::from_array(xt::xarray<double>{1, 1, 2, 3});
    const std::string mine_name = mine.name();
    d.adopt("adopted", std::move(mine));
    CHECK(mine.empty());
    CHECK(d.get<double>("adopted").name() == mine_name);
    CHECK(test_util::shm_exists(mine_name));

    CHECK(d.erase("b"));
    CHECK_FALSE(d.erase("b"));
    CHECK_FALSE(d.contains("b"));

    auto popped = d.pop<double>("adopted");
    CHECK(popped.name() == mine_name);
    CHECK_FALSE(d.contains("adopted"));
    CHECK_THROWS_AS(d.pop<double>("adopted"), ndshm::not_found);

    std::map<std::string, xt::xarray<double>> more{{"x", {1}}, {"y", {2, 2}}, {"a", {0}}};
    d.update(more);
    CHECK(d.size() == 4);
    CHECK((d.get<double>("a").copy() == xt::xarray<double>{0}));
    CHECK_THROWS_AS(d.copy<double>(), ndshm::dtype_mismatch); // "fortran" holds int32
    CHECK(d.erase("fortran"));
    const auto copy = d.copy<double>();
    CHECK(copy.size() == 3);
    CHECK((copy.at("y") == xt::xarray<double>{2, 2}));
}

TEST_CASE("copy-out, values, items and iteration see one snapshot", "[dict]")
{
    auto d = shared_dict::create(8);
    d.assign("one", xt::xarray<double>{1});
    d.assign("two", xt::xarray<double>{2, 2});
    d.assign("three", xt::xarray<double>{3, 3, 3});
    const std::map<std::string, xt::xarray<double>> c = d.copy<double>();
    CHECK(c.size() == 3);
    CHECK((c.at("two") == xt::xarray<double>{2, 2}));
    std::vector<std::string> seen;
    for (const auto& [key, value] : d) {
        seen.push_back(key);
        CHECK(static_cast<double>(value.size()) == value.as<const double>()(0));
    }
    CHECK(seen == std::vector<std::string>{"one", "two", "three"});
    CHECK(d.values<double>().size() == 3);
    CHECK(d.values().size() == 3);
    CHECK(d.items<const double>()[2].second(2) == 3);

    // update from another dict copies its entries, whatever their dtype.
    auto other = shared_dict::create(4);
    other.assign("four", xt::xarray<std::uint8_t>{4});
    other.assign("one", xt::xarray<double>{-1});
    d.update(other);
    CHECK(d.size() == 4);
    CHECK(d.get<std::uint8_t>("four")(0) == 4);
    CHECK(d.get<double>("one")(0) == -1);
    CHECK(d.get<std::uint8_t>("four").name() != other.get<std::uint8_t>("four").name());
    d.clear();
    CHECK(d.size() == 0);
    CHECK(d.begin() == d.end());
}

TEST_CASE("a dtype mismatch names both dtypes and changes nothing", "[dict][errors]")
{
    auto d = shared_dict::create(4);
    d.assign("w", xt::xarray<float>{1, 2});
    CHECK_THROWS_AS(d.get<double>("w"), ndshm::dtype_mismatch);
    CHECK_THROWS_WITH(d.get<double>("w"), Catch::Contains("entry 'w' holds float32 ('<f4'), not float64 ('<f8')"));
    try {
        (void)d.get<std::int32_t>("w");
        FAIL("no exception");
    } catch (const ndshm::error& e) {
        CHECK(e.code() == ndshm::errc::dtype_mismatch);
    }
    CHECK_THROWS_AS(d.pop<double>("w"), ndshm::dtype_mismatch);
    CHECK(d.contains("w")); // a failed pop keeps the entry
    CHECK_THROWS_AS(d.values<double>(), ndshm::dtype_mismatch);
    CHECK(d.get("w").as<float>()(1) == 2); // dtype-erased access
    CHECK_THROWS_AS(d.get("w").as<double>(), ndshm::dtype_mismatch);
}

TEST_CASE("a full dict refuses more keys and names the fix", "[dict][errors]")
{
    auto d = shared_dict::create(2);
    d.assign("a", xt::xarray<int>{1});
    d.assign("b", xt::xarray<int>{2});
    CHECK_THROWS_AS(d.assign("c", xt::xarray<int>{3}), ndshm::out_of_space);
    CHECK_THROWS_WITH(d.assign("c", xt::xarray<int>{3}), Catch::Contains("is full") &&
                                                             Catch::Contains("capacity is 2") &&
                                                             Catch::Contains("larger capacity"));
    d.assign("a", xt::xarray<int>{10}); // replacing needs no more room
    d.assign("b", xt::xarray<int>{20});
    CHECK(d.get<int>("a")(0) == 10);
    // An update that would not fit changes nothing at all.
    std::map<std::string, xt::xarray<int>> batch{{"a", {100}}, {"z", {26}}};
    CHECK_THROWS_AS(d.update(batch), ndshm::out_of_space);
    CHECK(d.get<int>("a")(0) == 10);
    CHECK_FALSE(d.contains("z"));
    CHECK(d.erase("a"));
    d.assign("c", xt::xarray<int>{3});
    CHECK(d.size() == 2);
}

TEST_CASE("bad arguments and empty handles give clear errors", "[dict][errors]")
{
    SECTION("capacity and options")
    {
        CHECK_THROWS_WITH(shared_dict::create(0), Catch::Contains("capacity 0 is out of range"));
        CHECK_THROWS_AS(shared_dict::create(std::size_t(1) << 21), ndshm::error);
        ndshm::options o;
        o.read_only = true;
        CHECK_THROWS_WITH(shared_dict::create(4, o), Catch::Contains("read_only"));
    }
    SECTION("a key longer than 255 bytes")
    {
        auto d = shared_dict::create(4);
        CHECK_THROWS_WITH(d.assign(std::string(256, 'k'), xt::xarray<int>{1}), Catch::Contains("at most 255"));
        d.assign(std::string(255, 'k'), xt::xarray<int>{1});
        d.assign(std::string("\0\xff", 2), xt::xarray<int>{2}); // any bytes
        CHECK(d.get<int>(std::string("\0\xff", 2))(0) == 2);
        d.assign("", xt::xarray<int>{3});
        CHECK(d.get<int>("")(0) == 3);
    }
    SECTION("a name that exists is never reused")
    {
        auto d = shared_dict::create(4);
        ndshm::options o;
        o.name = d.name();
        CHECK_THROWS_AS(shared_dict::create(4, o), ndshm::already_exists);
    }
    SECTION("opening what is not a dict")
    {
        auto a = shared_ndarray<double>::create({4});
        CHECK_THROWS_WITH(shared_dict::attach(a.name()), Catch::Contains("not a dict"));
        auto l = ndshm::shared_list::create(4);
        try {
            (void)shared_dict::attach(l.name());
            FAIL("no exception");
        } catch (const ndshm::format_error& e) {
            CHECK(e.code() == ndshm::errc::wrong_kind);
        }
        auto d = shared_dict::create(4);
        CHECK_THROWS_WITH(shared_ndarray<std::uint8_t>::attach(d.name()), Catch::Contains("shared_dict::attach"));
        CHECK_THROWS_AS(shared_dict::attach("ndshm_no_such_dict"), ndshm::not_found);
    }
    SECTION("adopting what cannot be handed over leaves it as it was")
    {
        auto d = shared_dict::create(4);
        auto a = shared_ndarray<double>::create({3});
        auto attached = shared_ndarray<double>::attach(a.name());
        CHECK_THROWS_WITH(d.adopt("x", std::move(attached)), Catch::Contains("does not own"));
        CHECK_FALSE(attached.empty());
        CHECK_THROWS_WITH(d.adopt("x", shared_ndarray<double>()), Catch::Contains("empty"));
        CHECK_FALSE(d.contains("x"));
    }
    SECTION("moved-from, reset and default handles are empty")
    {
        auto d = shared_dict::create(4);
        d.assign("a", xt::xarray<int>{1});
        shared_dict moved = std::move(d);
        CHECK_FALSE(d);
        CHECK(d.name().empty());
        CHECK(d.size() == 0);
        CHECK(d.capacity() == 0);
        CHECK(d.empty());
        CHECK_THROWS_WITH(d.get<int>("a"), Catch::Contains("handle is empty"));
        CHECK_THROWS_AS(d.assign("a", xt::xarray<int>{1}), ndshm::error);
        CHECK(moved.get<int>("a")(0) == 1);
        shared_dict copy = moved;
        copy.reset();
        CHECK_FALSE(copy);
        CHECK(moved.size() == 1); // one handle's reset does not touch the dict
        CHECK_FALSE(shared_dict());
        CHECK_THROWS_AS(shared_dict().keys(), ndshm::error);
    }
}

TEST_CASE("the owner's last handle removes the dict and every entry; others never do", "[dict][lifetime]")
{
    temp_dir dir;
    std::string name;
    {
        auto d = shared_dict::create(8, dir.opts());
        name = d.name();
        d.assign("a", xt::xarray<double>{1});
        d.assign("b", xt::xarray<double>{2});
        CHECK(dir.files().size() == 3);
        // A forked child that opens the dict, changes it and exits removes nothing.
        const auto st = test_util::run_child([&] {
            auto c = shared_dict::attach(name, dir.opts());
            c.assign("c", xt::xarray<double>{3});
            auto inherited = d; // the owner's handle, copied into the child: never owns
            d.reset();
            inherited.reset(); // the last handle in the child goes, and removes nothing
            return 0;
        });
        CHECK(st.ok());
        CHECK(d.size() == 3);
        CHECK(dir.files().size() == 4);
        // The entry the child made belongs to the dict's owner now (gc judges it by this process).
        auto c = d.get<double>("c");
        CHECK(ndshm::inspect(c.name(), dir.opts()).trailer->creator_pid == static_cast<std::uint64_t>(::getpid()));
        auto other = shared_dict::attach(name, dir.opts());
        auto popped = d.pop<double>("a");
        d.reset();
        // other still holds a handle, but it does not own: the dict went with the owner's last handle.
        CHECK(dir.files().size() == 1); // only the popped array, owned by this process now
        CHECK_THROWS_WITH(other.keys(), Catch::Contains("was removed"));
        CHECK(c(0) == 3); // arrays attached before stay valid
    }
    CHECK(dir.files().empty());
}

TEST_CASE("a persisted dict outlives its owner until remove()", "[dict][lifetime]")
{
    temp_dir dir;
    std::string name;
    {
        auto d = shared_dict::create(8, dir.opts());
        name = d.name();
        d.assign("a", xt::xarray<double>{1});
        d.persist();
        d.assign("b", xt::xarray<double>{2}); // entries added afterwards are persisted too
    }
    CHECK(dir.files().size() == 3);
    for (const auto& s : ndshm::list_segments(dir.opts())) {
        CHECK(s.persisted());
    }
    auto d = shared_dict::attach(name, dir.opts());
    CHECK(d.get<double>("b")(0) == 2);
    auto popped = d.pop<double>("a"); // a popped entry is this process's, no longer persisted
    CHECK_FALSE(ndshm::inspect(popped.name(), dir.opts()).persisted());
    d.remove();
    CHECK(dir.files().size() == 1);
    popped.reset();
    CHECK(dir.files().empty());
    CHECK_THROWS_AS(d.keys(), ndshm::error);
}

TEST_CASE("gc removes the dict and its entries once its creator is dead", "[dict][lifetime][gc]")
{
    temp_dir dir;
    test_util::event made, never;
    const pid_t pid = test_util::fork_child([&] {
        auto d = shared_dict::create(8, dir.opts());
        d.assign("a", xt::xarray<double>{1});
        d.assign("b", xt::xarray<double>{2});
        made.set();
        never.wait(); // killed while it owns the dict
        return 0;
    });
    REQUIRE(made.wait() == 1);
    REQUIRE(::kill(pid, SIGKILL) == 0);
    CHECK(test_util::wait_child(pid).signal == SIGKILL);
    CHECK(dir.files().size() == 3);
    for (const auto& s : ndshm::list_segments(dir.opts())) {
        CHECK(ndshm::gc_reason(s).find("creator is dead") != std::string::npos);
    }
    const auto removed = ndshm::gc(dir.opts());
    CHECK(removed.size() == 3);
    CHECK(dir.files().empty());
}

TEST_CASE("several processes change and read one dict at once", "[dict][multiprocess]")
{
    temp_dir dir;
    auto d = shared_dict::create(64, dir.opts());
    constexpr int writers = 3, rounds = 150, readers = 2;
    shared_flag writers_done;
    test_util::event start;
    std::vector<pid_t> writer_pids, reader_pids;
    for (int w = 0; w < writers; ++w) {
        writer_pids.push_back(test_util::fork_child([&, w] {
            auto c = shared_dict::attach(d.name(), dir.opts());
            start.wait();
            for (int i = 0; i < rounds; ++i) {
                c.assign("shared", stamp(w * 100000 + i)); // every writer on one key
                c.assign("w" + std::to_string(w) + "_" + std::to_string(i % 4), stamp(w * 100000 + i));
                if (i % 5 == 4) {
                    (void)c.erase("w" + std::to_string(w) + "_" + std::to_string((i + 1) % 4));
                }
                std::map<std::string, xt::xarray<std::int64_t>> batch{{"batch_a", stamp(i)}, {"batch_b", stamp(i)}};
                c.update(batch); // both or neither
            }
            return 0;
        }));
    }
    for (int r = 0; r < readers; ++r) {
        reader_pids.push_back(test_util::fork_child([&] {
            auto c = shared_dict::attach(d.name(), dir.opts());
            start.wait();
            int bad = 0, reads = 0;
            while (!writers_done.is_set() || reads < 10) {
                ++reads;
                if (auto a = c.find<const std::int64_t>("shared"); a && !is_stamp(a.data(), a.size())) {
                    ++bad;
                }
                const auto items = c.items<const std::int64_t>();
                std::map<std::string, std::int64_t> stamps;
                for (const auto& kv : items) {
                    bad += is_stamp(kv.second.data(), kv.second.size()) ? 0 : 1;
                    stamps[kv.first] = kv.second(0);
                }
                // An update is atomic: a snapshot has both batch keys, from one update, or neither.
                const bool a = stamps.count("batch_a") != 0, b = stamps.count("batch_b") != 0;
                if (a != b || (a && stamps["batch_a"] != stamps["batch_b"])) {
                    ++bad;
                }
            }
            return bad == 0 ? 0 : 1;
        }));
    }
    for (int k = 0; k < writers + readers; ++k) {
        start.set();
    }
    for (const pid_t pid : writer_pids) {
        CHECK(test_util::wait_child(pid).ok());
    }
    writers_done.set();
    for (const pid_t pid : reader_pids) {
        CHECK(test_util::wait_child(pid).ok());
    }
    auto last = d.get<std::int64_t>("shared");
    CHECK(is_stamp(last.data(), last.size()));
    CHECK(last(0) % 100000 == rounds - 1);
    for (int w = 0; w < writers; ++w) {
        // The last round (i = rounds - 1 = 149) assigned w_1; round 149 % 5 == 4 erased w_2.
        CHECK(d.get<std::int64_t>("w" + std::to_string(w) + "_1")(0) == w * 100000 + rounds - 1);
        CHECK_FALSE(d.contains("w" + std::to_string(w) + "_2"));
    }
    // Nothing leaked: the dict's segment and one per entry.
    CHECK(dir.files().size() == d.size() + 1);
    CHECK(ndshm::segment_problems(ndshm::inspect(d.name(), dir.opts())).empty());
}

TEST_CASE("concurrent inserts of one key: exactly one wins", "[dict][multiprocess]")
{
    temp_dir dir;
    auto d = shared_dict::create(8, dir.opts());
    test_util::event start;
    std::vector<pid_t> pids;
    for (int k = 0; k < 4; ++k) {
        pids.push_back(test_util::fork_child([&, k] {
            auto c = shared_dict::attach(d.name(), dir.opts());
            start.wait();
            return c.insert("only", stamp(k)) ? 0 : 1;
        }));
    }
    for (std::size_t k = 0; k < pids.size(); ++k) {
        start.set();
    }
    int winners = 0;
    for (const pid_t pid : pids) {
        const auto st = test_util::wait_child(pid);
        REQUIRE(st.exited);
        winners += st.code == 0 ? 1 : 0;
    }
    CHECK(winners == 1);
    CHECK(d.size() == 1);
    CHECK(dir.files().size() == 2); // the losers' copies are gone
}

namespace {

// The insert race made deterministic: the child's insert has found the key absent and is making its
// copy (sizing the new segment) when the parent inserts the key; the child's insert must then change
// nothing and leave nothing behind.
int g_making_fd = -1, g_go_fd = -1;
int (*g_real_ftruncate)(int, off_t) = nullptr;

int ftruncate_after_parent(int fd, off_t length)
{
    ndshm::detail::sys().ftruncate = g_real_ftruncate;
    const char c = 1;
    char got = 0;
    (void)!::write(g_making_fd, &c, 1);
    (void)!::read(g_go_fd, &got, 1);
    return g_real_ftruncate(fd, length);
}

} // namespace

TEST_CASE("an insert that loses the race to another process changes nothing and leaves no segment",
          "[dict][multiprocess]")
{
    temp_dir dir;
    auto d = shared_dict::create(8, dir.opts());
    int making[2], go[2];
    REQUIRE(::pipe(making) == 0);
    REQUIRE(::pipe(go) == 0);
    const pid_t pid = test_util::fork_child([&] {
        auto c = shared_dict::attach(d.name(), dir.opts());
        g_making_fd = making[1];
        g_go_fd = go[0];
        g_real_ftruncate = ndshm::detail::sys().ftruncate;
        ndshm::detail::sys().ftruncate = ftruncate_after_parent;
        const bool inserted = c.insert("only", stamp(2));
        return inserted ? 1 : 0;
    });
    char c = 0;
    REQUIRE(::read(making[0], &c, 1) == 1); // the child is making its copy
    CHECK(d.insert("only", stamp(1)));
    REQUIRE(::write(go[1], &c, 1) == 1);
    const auto st = test_util::wait_child(pid);
    for (const int fd : {making[0], making[1], go[0], go[1]}) {
        ::close(fd);
    }
    CHECK(st.ok()); // its insert returned false
    CHECK(d.get<std::int64_t>("only")(0) == 1);
    CHECK(d.size() == 1);
    CHECK(dir.files().size() == 2); // the dict and the one entry: the loser's copy is gone
    raw_table raw(dir.path_of(d.name()));
    CHECK(raw.changes() == 1); // the losing insert committed nothing
    std::size_t filled = 0;
    for (std::size_t r = 0; r < raw.layout().records; ++r) {
        filled += raw.record(r).state == ndshm::detail::record_filled ? 1 : 0;
    }
    CHECK(filled == 1);
}

TEST_CASE("a writer killed in the middle of a change leaves a consistent dict", "[dict][multiprocess][fault]")
{
    temp_dir dir;
    auto d = shared_dict::create(8, dir.opts());
    d.assign("k", stamp(1));
    d.assign("other", stamp(5));
    raw_table raw(dir.path_of(d.name()));

    SECTION("killed after committing a replacement, before unlinking the old entry")
    {
        const std::string old_name = d.get<std::int64_t>("k").name();
        const auto st = test_util::run_child([&] {
            auto c = shared_dict::attach(d.name(), dir.opts());
            collection_util::die_at_next_unlink();
            c.assign("k", stamp(2));
            return 0;
        });
        CHECK(st.signal == SIGKILL);
        CHECK(raw.control().dirty == 1); // it died holding the lock, mid-change
        CHECK(dir.files().size() == 4);  // the dict, "other", and the old and new "k"
        // The next user takes the lock over, finishes the change, and sees the new value.
        CHECK(d.get<std::int64_t>("k")(0) == 2);
        CHECK(raw.recoveries() == 1);
        CHECK(raw.control().dirty == 0);
        CHECK_FALSE(test_util::shm_exists(old_name));
        CHECK(dir.files().size() == 3);
    }
    SECTION("killed after committing an erase")
    {
        const auto st = test_util::run_child([&] {
            auto c = shared_dict::attach(d.name(), dir.opts());
            collection_util::die_at_next_unlink();
            (void)c.erase("k");
            return 0;
        });
        CHECK(st.signal == SIGKILL);
        CHECK_FALSE(d.contains("k"));
        CHECK(dir.files().size() == 2);
    }
    SECTION("killed after filling a record, before the commit")
    {
        // The state a writer leaves if it dies between marking its new record filled and the commit:
        // the record names its segment, which is not in the dict. Made here by hand, in a child that
        // holds the lock when it dies.
        const auto st = test_util::run_child([&] {
            auto seg = shared_ndarray<std::int64_t>::from_array(stamp(3), dir.opts());
            auto& ctl = raw.control();
            ndshm::detail::lock_until(ctl.lock, std::chrono::steady_clock::time_point::max(),
                                      {std::string("test"), d.name(), "the dict's lock"});
            std::uint32_t r = 0;
            while (raw.record(r).state != ndshm::detail::record_free) {
                ++r;
            }
            auto& rec = raw.record(r);
            const auto& m = ndshm::detail::array_access::mapping_of(seg);
            rec.dtype = static_cast<std::uint32_t>(ndshm::dtype::int64);
            rec.key_bytes = 1;
            rec.name_bytes = static_cast<std::uint32_t>(seg.name().size());
            rec.key_hash = ndshm::detail::collection_hash("k", 1);
            rec.dev = m->id().dev;
            rec.ino = m->id().ino;
            rec.created_ns = m->get_trailer()->created_ns;
            rec.segment_bytes = m->size();
            rec.data_bytes = seg.nbytes();
            std::memcpy(rec.name, seg.name().data(), seg.name().size());
            reinterpret_cast<char*>(&rec + 1)[0] = 'k';
            ctl.dirty = 1;
            rec.state = ndshm::detail::record_filled;
            m->disown();
            ::kill(::getpid(), SIGKILL);
            return 0;
        });
        CHECK(st.signal == SIGKILL);
        CHECK(dir.files().size() == 4);
        CHECK(ndshm::segment_problems(ndshm::inspect(d.name(), dir.opts())).size() >= 1);
        CHECK(d.get<std::int64_t>("k")(0) == 1); // the change never happened
        CHECK(dir.files().size() == 3);          // and its segment is gone
        CHECK(ndshm::segment_problems(ndshm::inspect(d.name(), dir.opts())).empty());
    }
    SECTION("killed before its new entry reached the table: gc removes the segment")
    {
        test_util::event made, never;
        const pid_t pid = test_util::fork_child([&] {
            auto seg = shared_ndarray<std::int64_t>::from_array(stamp(4), dir.opts()); // as assign() makes it
            made.set();
            never.wait();
            return 0;
        });
        REQUIRE(made.wait() == 1);
        REQUIRE(::kill(pid, SIGKILL) == 0);
        CHECK(test_util::wait_child(pid).signal == SIGKILL);
        CHECK(dir.files().size() == 4);
        CHECK(ndshm::gc(dir.opts()).size() == 1);
        CHECK(dir.files().size() == 3);
        CHECK(d.size() == 2);
    }
    // Whatever happened, the dict is usable afterwards.
    d.assign("after", stamp(6));
    CHECK(d.get<std::int64_t>("after")(0) == 6);
    CHECK(ndshm::segment_problems(ndshm::inspect(d.name(), dir.opts())).empty());
}

TEST_CASE("writers killed at random points never corrupt the dict or leak for good", "[dict][multiprocess][fault]")
{
    temp_dir dir;
    auto d = shared_dict::create(16, dir.opts());
    for (int round = 0; round < 24; ++round) {
        test_util::event progress;
        const pid_t pid = test_util::fork_child([&] {
            auto c = shared_dict::attach(d.name(), dir.opts());
            for (int i = 0;; ++i) {
                c.assign("k" + std::to_string(i % 5), stamp(round * 1000 + i));
                if (i % 3 == 0) {
                    (void)c.erase("k" + std::to_string((i + 2) % 5));
                }
                if (i % 4 == 0) {
                    std::map<std::string, xt::xarray<std::int64_t>> batch{{"b1", stamp(i)}, {"b2", stamp(i)}};
                    c.update(batch);
                }
                progress.set();
            }
            return 0;
        });
        for (int k = 0; k < 1 + round % 6; ++k) {
            REQUIRE(progress.wait() == 1);
        }
        REQUIRE(::kill(pid, SIGKILL) == 0);
        CHECK(test_util::wait_child(pid).signal == SIGKILL);
        // The dict is whole, usable, and holds only complete entries.
        d.assign("probe", stamp(round));
        for (const auto& kv : d.items<const std::int64_t>()) {
            CHECK(is_stamp(kv.second.data(), kv.second.size()));
        }
        const auto keys = d.keys();
        CHECK(std::count(keys.begin(), keys.end(), "b1") == std::count(keys.begin(), keys.end(), "b2"));
        CHECK(ndshm::segment_problems(ndshm::inspect(d.name(), dir.opts())).empty());
        // A segment the dead writer made but never handed over names it, and gc removes it.
        collection_util::gc_after_kill(dir);
        CHECK(dir.files().size() == d.size() + 1);
    }
}

TEST_CASE("a damaged table is a format_error, never a crash", "[dict][errors][fault]")
{
    temp_dir dir;
    auto d = shared_dict::create(8, dir.opts());
    d.assign("a", xt::xarray<double>{1});
    d.assign("b", xt::xarray<double>{2});
    raw_table raw(dir.path_of(d.name()));
    const auto corrupt = [&](auto&& call, int line = 0) {
        INFO("call at line " << line);
        try {
            call();
            FAIL("no exception");
        } catch (const ndshm::format_error& e) {
            CHECK(e.code() == ndshm::errc::corrupt_control);
        }
    };
    SECTION("the magic")
    {
        raw.control().magic[0] = 'X';
        corrupt([&] { (void)d.get<double>("a"); }, __LINE__);
        CHECK_THROWS_AS(shared_dict::attach(d.name(), dir.opts()), ndshm::format_error);
    }
    SECTION("a size beyond the capacity")
    {
        raw.control().view = ndshm::detail::view_pack(9999, 0, 1);
        corrupt([&] { (void)d.keys(); }, __LINE__);
    }
    SECTION("the order names a record beyond the table")
    {
        raw.order()[1] = 1u << 30;
        corrupt([&] { (void)d.keys(); }, __LINE__);
        corrupt([&] { d.assign("c", xt::xarray<double>{3}); });
    }
    SECTION("a record of an entry")
    {
        raw.record(raw.order()[0]).name[3] = '/';
        corrupt([&] { (void)d.items(); }, __LINE__);
        raw.record(raw.order()[0]).name[3] = 'm';
        raw.record(raw.order()[0]).state = 77;
        corrupt([&] { (void)d.keys(); }, __LINE__);
    }
    SECTION("the index")
    {
        for (std::size_t i = 0; i < raw.layout().index_slots; ++i) {
            raw.index()[i] = raw.index()[i] != 0 ? 0x7fffffffu : 0;
        }
        // Each key's probe starts at its own slot or runs into the other's: both hit a bad slot.
        corrupt([&] { (void)d.get<double>("a"); }, __LINE__);
        corrupt([&] { (void)d.contains("b"); }, __LINE__);
        // A key whose home slot is empty is simply absent: its lookup reads no damaged slot.
        const std::size_t mask = raw.layout().index_slots - 1;
        std::string absent;
        for (int k = 0; absent.empty(); ++k) {
            const std::string key = "z" + std::to_string(k);
            if (raw.index()[ndshm::detail::collection_hash(key.data(), key.size()) & mask] == 0) {
                absent = key;
            }
        }
        CHECK_FALSE(d.contains(absent));
    }
    SECTION("the state words")
    {
        raw.control().dirty = 7;
        corrupt([&] { (void)d.contains("a"); });
    }
    SECTION("the lock")
    {
        raw.control().lock.word = 0x40000001u; // names no thread
        corrupt([&] { (void)d.contains("a"); });
    }
    CHECK_FALSE(ndshm::segment_problems(ndshm::inspect(d.name(), dir.opts())).empty());
}

TEST_CASE("inspect, ls and info show a dict and check it", "[dict][inspect]")
{
    temp_dir dir;
    auto d = shared_dict::create(8, dir.opts());
    d.assign("a", xt::xarray<double>{1});
    d.assign("b", xt::xarray<float>{2});
    auto s = ndshm::inspect(d.name(), dir.opts());
    CHECK(s.kind == ndshm::segment_kind::dict);
    CHECK(std::string(ndshm::kind_name(s.kind)) == "dict");
    CHECK(s.contents.text == "2 of 8 entries");
    CHECK(s.internals.checked);
    CHECK(ndshm::segment_problems(s).empty());
    bool listed = false;
    for (const auto& x : ndshm::list_segments(dir.opts())) {
        if (x.name == d.name()) {
            listed = true;
            CHECK(x.contents.text == "2 of 8 entries");
        }
    }
    CHECK(listed);
#ifdef NDSHM_TEST_TOOL
    const auto ls = tools_util::run_program({NDSHM_TEST_TOOL, "--dir", dir.path(), "ls"});
    CHECK(ls.status.ok());
    CHECK(ls.out.find("dict") != std::string::npos);
    CHECK(ls.out.find("2 of 8 entries") != std::string::npos);
    CHECK(tools_util::run_program({NDSHM_TEST_TOOL, "--dir", dir.path(), "info", d.name()}).status.code == 0);
#endif
    // An entry whose segment someone removed behind the dict's back is a problem info reports.
    ndshm::unlink(d.get<float>("b").name(), dir.opts());
    const auto problems = ndshm::segment_problems(ndshm::inspect(d.name(), dir.opts()));
    REQUIRE(problems.size() == 1);
    CHECK(problems[0].find("entry 'b'") != std::string::npos);
#ifdef NDSHM_TEST_TOOL
    const auto info = tools_util::run_program({NDSHM_TEST_TOOL, "--dir", dir.path(), "info", d.name()});
    CHECK(info.status.code == 5);
    CHECK(info.out.find("PROBLEM") != std::string::npos);
#endif
    CHECK_THROWS_AS(d.get<float>("b"), ndshm::not_found);
    CHECK(d.erase("b"));
    CHECK(ndshm::segment_problems(ndshm::inspect(d.name(), dir.opts())).empty());
}
