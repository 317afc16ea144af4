// inspect.hpp: what list_segments and inspect tell about arrays, foreign .npy files, unfinished,
// corrupt and composite segments, and which segments gc removes (creator dead, pid reused, zombie,
// persisted, unfinished with and without a trailer). Segments are files in a private directory
// backend, so gc never sees the segments of tests that run in parallel.
#include <ndshm/all.hpp>

#include "test_util.hpp"
#include "tools_util.hpp"

#include <catch2/catch.hpp>

#include <sys/mman.h>
#include <sys/stat.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

using ndshm::segment_kind;
using ndshm::shared_ndarray;
using tools_util::temp_dir;

namespace {

std::map<std::string, ndshm::segment_info> by_name(const std::vector<ndshm::segment_info>& v)
{
    std::map<std::string, ndshm::segment_info> m;
    for (const auto& s : v) {
        m[s.name] = s;
    }
    return m;
}

std::vector<std::string> names_of(const std::vector<ndshm::gc_entry>& v)
{
    std::vector<std::string> n;
    for (const auto& e : v) {
        n.push_back(e.segment.name);
    }
    std::sort(n.begin(), n.end());
    return n;
}

/// The bytes of a segment without a .npy header whose trailer (the last 256 bytes) says `kind`.
std::vector<unsigned char> trailer_only_bytes(std::uint32_t kind, std::uint32_t state, pid_t creator)
{
    std::vector<unsigned char> b(1024, 0);
    b[0] = 'X'; // not a .npy, and not zero: published by the object's own rules
    ndshm::detail::trailer t{};
    std::memcpy(t.magic, ndshm::detail::trailer_magic, sizeof t.magic);
    t.version = 1;
    t.size = 256;
    t.kind = kind;
    t.state = state;
    t.uid = static_cast<std::uint32_t>(::geteuid());
    t.creator_pid = static_cast<std::uint64_t>(creator);
    t.creator_start = ndshm::detail::process_start_time(creator);
    std::memcpy(b.data() + b.size() - 256, &t, sizeof t);
    return b;
}

} // namespace

TEST_CASE("inspect describes an ndshm array: header, trailer, creator and users", "[inspect]")
{
    ndshm::options o;
    o.name = tools_util::test_name("inspect");
    auto a = shared_ndarray<float>::create({3, 5}, ndshm::order::fortran, o);
    const auto s = ndshm::inspect(a.name());
    CHECK(s.name == a.name());
    CHECK(s.path == "/dev/shm/" + a.name());
    CHECK(s.directory.empty());
    CHECK(s.kind == segment_kind::array);
    CHECK(std::string(ndshm::kind_name(s.kind)) == "array");
    CHECK(s.problem.empty());
    CHECK(s.mode == 0600);
    CHECK(s.uid == ::geteuid());
    REQUIRE(s.has_header);
    CHECK(s.dtype == ndshm::dtype::float32);
    CHECK(s.shape == std::vector<std::size_t>{3, 5});
    CHECK(s.fortran_order);
    CHECK(s.data_offset == 4096);
    CHECK(s.data_bytes == 60);
    REQUIRE(s.trailer);
    CHECK(s.trailer->offset == ndshm::detail::trailer_offset(4096 + 60));
    CHECK(s.bytes == s.trailer->offset + 256);
    CHECK(s.trailer->version == 1);
    CHECK(s.trailer->kind == 1);
    CHECK(s.trailer->ready);
    CHECK_FALSE(s.trailer->persisted);
    CHECK(s.trailer->creator_pid == static_cast<std::uint64_t>(::getpid()));
    CHECK(s.trailer->creator_start == ndshm::detail::process_start_time(::getpid()));
    CHECK(s.trailer->creator_uid == ::geteuid());
    CHECK(s.trailer->data_offset == 4096);
    CHECK(s.trailer->data_bytes == 60);
    CHECK(s.creator == ndshm::creator_status::alive);
    CHECK(s.created_ns() <= ndshm::detail::now_ns());
    CHECK(ndshm::detail::now_ns() - s.created_ns() < 3600LL * 1000000000); // made in this test, not an hour ago
    // Looked up (complete where every process may be examined; partial otherwise, and it says why).
    REQUIRE((s.users_known || !s.users_detail.empty()));
    CHECK(s.users == std::vector<std::int64_t>{::getpid()}); // this process maps it
    CHECK(ndshm::gc_reason(s).empty());

    a.persist();
    CHECK(ndshm::inspect(a.name()).persisted());
    ndshm::unlink(a.name());
    CHECK_THROWS_AS(ndshm::inspect(a.name()), ndshm::not_found);
    CHECK_THROWS_AS(ndshm::inspect("bad/name"), ndshm::error);
}

TEST_CASE("inspect and list_segments read a foreign .npy that NumPy made", "[inspect][numpy]")
{
    temp_dir d;
    const std::string name = "ndshm_numpy_made";
    const auto r = tools_util::run_python("import numpy as np, sys\n"
                                          "a = np.lib.format.open_memmap(sys.argv[1], mode='w+', dtype='<i2', "
                                          "shape=(4, 6))\n"
                                          "a[...] = 7\n"
                                          "a.flush()\n",
                                          {d / name});
    REQUIRE(r.status.ok());
    const auto s = ndshm::inspect(name, d.opts());
    CHECK(s.kind == segment_kind::foreign_npy);
    CHECK(std::string(ndshm::kind_name(s.kind)) == "foreign npy");
    CHECK(s.directory == d.path);
    CHECK(s.path == d / name);
    CHECK(s.has_header);
    CHECK(s.dtype == ndshm::dtype::int16);
    CHECK(s.shape == std::vector<std::size_t>{4, 6});
    CHECK_FALSE(s.trailer);
    CHECK(s.creator == ndshm::creator_status::unknown);
    CHECK((s.users_known || !s.users_detail.empty()));
    CHECK(s.users.empty());
    CHECK(ndshm::gc_reason(s).empty()); // never collected
    const auto all = ndshm::list_segments(d.opts());
    REQUIRE(all.size() == 1);
    CHECK(all[0].kind == segment_kind::foreign_npy);
}

TEST_CASE("list_segments classifies unfinished, corrupt, composite and channel segments", "[inspect]")
{
    temp_dir d;
    const auto valid = tools_util::array_bytes(8);

    tools_util::write_file(d / "ndshm_empty", {});
    tools_util::write_file(d / "ndshm_zeros", std::vector<unsigned char>(8192, 0));
    auto writing = valid; // header written but the magic's first byte not yet; trailer says writing
    writing[0] = 0;
    tools_util::patch_trailer(writing, [](auto& t) { t.state = ndshm::detail::state_writing; });
    tools_util::write_file(d / "ndshm_writing", writing);
    auto garbage = std::vector<unsigned char>(5000, 0xAB);
    tools_util::write_file(d / "ndshm_garbage", garbage);
    auto bad_dict = valid;
    const std::string dict = "{'descr': '<f8', 'fortran_order': maybe, 'shape': (8,), }";
    std::copy(dict.begin(), dict.end(), bad_dict.begin() + 10);
    tools_util::write_file(d / "ndshm_bad_dict", bad_dict);
    auto future = valid;
    tools_util::patch_trailer(future, [](auto& t) { t.version = 9; });
    tools_util::write_file(d / "ndshm_future", future);
    auto disagree = valid;
    tools_util::patch_trailer(disagree, [](auto& t) { t.data_bytes += 8; });
    tools_util::write_file(d / "ndshm_disagree", disagree);
    auto unknown = valid;
    tools_util::patch_trailer(unknown, [](auto& t) { t.kind = 77; });
    tools_util::write_file(d / "ndshm_unknown_kind", unknown);
    // Objects, channels and queues are .npy files of bytes with a trailer of their kind.
    for (const auto& [name, kind] : std::vector<std::pair<std::string, std::uint32_t>>{
             {"ndshm_object", 2}, {"ndshm_channel", 3}, {"ndshm_queue", 4}}) {
        auto b = valid;
        tools_util::patch_trailer(b, [kind = kind](auto& t) { t.kind = kind; });
        tools_util::write_file(d / name, b);
    }
    tools_util::write_file(d / "ndshm_object_no_header", trailer_only_bytes(2, 1, ::getpid()));
    tools_util::write_file(d / "ndshm_object_writing", trailer_only_bytes(2, 0, ::getpid()));
    tools_util::write_file(d / "ndshm_truncated", std::vector<unsigned char>(valid.begin(), valid.begin() + 4100));
    // Not listed: other names, directories, symbolic links, FIFOs (which must not block the listing).
    tools_util::write_file(d / "unrelated", valid);
    REQUIRE(::mkdir((d / "ndshm_a_directory").c_str(), 0700) == 0);
    REQUIRE(::symlink((d / "unrelated").c_str(), (d / "ndshm_link").c_str()) == 0);
    REQUIRE(::mkfifo((d / "ndshm_fifo").c_str(), 0600) == 0);

    const auto all = ndshm::list_segments(d.opts());
    const auto m = by_name(all);
    CHECK(all.size() == 14);
    CHECK(std::is_sorted(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.name < b.name; }));
    CHECK(m.count("unrelated") == 0);
    CHECK(m.count("ndshm_a_directory") == 0);
    CHECK(m.count("ndshm_link") == 0);
    CHECK(m.count("ndshm_fifo") == 0);

    CHECK(m.at("ndshm_empty").kind == segment_kind::unfinished);
    CHECK(m.at("ndshm_zeros").kind == segment_kind::unfinished);
    CHECK_FALSE(m.at("ndshm_zeros").trailer);
    CHECK((m.at("ndshm_zeros").users_known || !m.at("ndshm_zeros").users_detail.empty())); // looked up for gc
    CHECK(m.at("ndshm_zeros").users.empty());

    const auto& w = m.at("ndshm_writing");
    CHECK(w.kind == segment_kind::unfinished);
    CHECK(w.has_header); // the header is there, all but the first byte of the magic
    CHECK(w.shape == std::vector<std::size_t>{8});
    REQUIRE(w.trailer);
    CHECK_FALSE(w.trailer->ready);
    CHECK(w.creator == ndshm::creator_status::alive); // array_bytes made it in this process

    CHECK(m.at("ndshm_garbage").kind == segment_kind::corrupt);
    CHECK_THAT(m.at("ndshm_garbage").problem, Catch::Contains("neither a .npy"));
    CHECK(m.at("ndshm_bad_dict").kind == segment_kind::corrupt);
    CHECK_THAT(m.at("ndshm_bad_dict").problem, Catch::Contains("True or False"));
    CHECK(m.at("ndshm_future").kind == segment_kind::corrupt);
    CHECK_THAT(m.at("ndshm_future").problem, Catch::Contains("version 9"));
    CHECK(m.at("ndshm_disagree").kind == segment_kind::corrupt);
    CHECK_THAT(m.at("ndshm_disagree").problem, Catch::Contains("disagrees"));
    CHECK(m.at("ndshm_unknown_kind").kind == segment_kind::corrupt);
    CHECK_THAT(m.at("ndshm_unknown_kind").problem, Catch::Contains("unknown kind 77"));
    CHECK(m.at("ndshm_truncated").kind == segment_kind::corrupt);
    CHECK_THAT(m.at("ndshm_truncated").problem, Catch::Contains("truncated"));

    CHECK(m.at("ndshm_object").kind == segment_kind::object);
    CHECK(m.at("ndshm_object").creator == ndshm::creator_status::alive);
    CHECK(m.at("ndshm_channel").kind == segment_kind::channel);
    CHECK(m.at("ndshm_queue").kind == segment_kind::queue);
    CHECK(m.at("ndshm_object_no_header").kind == segment_kind::object);
    CHECK_FALSE(m.at("ndshm_object_no_header").has_header);
    CHECK(m.at("ndshm_object_writing").kind == segment_kind::unfinished);
    REQUIRE(m.at("ndshm_object_writing").trailer);
    CHECK(m.at("ndshm_object_writing").trailer->kind == 2);

    // inspect of a name that is not a regular file says so instead of failing or blocking.
    CHECK(ndshm::inspect("ndshm_link", d.opts()).kind == segment_kind::unreadable);
    CHECK(ndshm::inspect("ndshm_fifo", d.opts()).kind == segment_kind::unreadable);
    CHECK_THROWS_AS(ndshm::list_segments([] {
                        ndshm::options o;
                        o.directory = "/nonexistent/ndshm_test_dir";
                        return o;
                    }()),
                    ndshm::not_found);
}

TEST_CASE("the creator is dead when its pid is gone, a zombie, or reused by another process", "[inspect][gc]")
{
    temp_dir d;
    const auto valid = tools_util::array_bytes(4);
    const auto with_creator = [&](const std::string& name, pid_t pid, std::uint64_t start, bool persisted) {
        auto b = valid;
        tools_util::patch_trailer(b, [&](auto& t) {
            t.creator_pid = static_cast<std::uint64_t>(pid);
            t.creator_start = start;
            t.flags = persisted ? std::uint32_t{ndshm::detail::flag_persisted} : 0u;
        });
        tools_util::write_file(d / name, b);
    };
    const pid_t me = ::getpid();
    const std::uint64_t my_start = ndshm::detail::process_start_time(me);
    REQUIRE(my_start != 0);
    const pid_t gone = tools_util::dead_pid();
    REQUIRE(::kill(gone, 0) != 0);
    const pid_t zombie = test_util::fork_child([] { return 0; }); // exits at once; reaped at the end
    tools_util::child_guard zombie_guard(zombie);
    // Wait until it is a zombie: its /proc state says Z (waitid with WNOWAIT does not reap it).
    siginfo_t info{};
    REQUIRE(::waitid(P_PID, static_cast<id_t>(zombie), &info, WEXITED | WNOWAIT) == 0);

    with_creator("ndshm_alive", me, my_start, false);
    with_creator("ndshm_alive_unknown_start", me, 0, false);
    with_creator("ndshm_gone", gone, 12345, false);
    with_creator("ndshm_gone_persisted", gone, 12345, true);
    with_creator("ndshm_zombie", zombie, ndshm::detail::process_start_time(zombie), false);
    with_creator("ndshm_reused", me, my_start + 1, false); // this pid, but another start time
    with_creator("ndshm_no_pid", 0, 0, false);

    const auto m = by_name(ndshm::list_segments(d.opts()));
    CHECK(m.at("ndshm_alive").creator == ndshm::creator_status::alive);
    CHECK(m.at("ndshm_alive_unknown_start").creator == ndshm::creator_status::alive);
    CHECK(m.at("ndshm_gone").creator == ndshm::creator_status::dead);
    CHECK_THAT(m.at("ndshm_gone").creator_detail, Catch::Contains("no process"));
    CHECK(m.at("ndshm_zombie").creator == ndshm::creator_status::dead);
    CHECK_THAT(m.at("ndshm_zombie").creator_detail, Catch::Contains("zombie"));
    CHECK(m.at("ndshm_reused").creator == ndshm::creator_status::dead);
    CHECK_THAT(m.at("ndshm_reused").creator_detail, Catch::Contains("another process"));
    CHECK(m.at("ndshm_no_pid").creator == ndshm::creator_status::unknown);

    const std::vector<std::string> garbage{"ndshm_gone", "ndshm_reused", "ndshm_zombie"};
    const auto dry = ndshm::gc(d.opts(), true);
    CHECK(names_of(dry) == garbage);
    for (const auto& e : dry) {
        CHECK_FALSE(e.removed);
        CHECK(e.error.empty());
        CHECK_THAT(e.reason, Catch::Contains("creator is dead") && Catch::Contains("not persisted"));
        CHECK(tools_util::file_exists(d / e.segment.name));
    }
    const auto done = ndshm::gc(d.opts());
    CHECK(names_of(done) == garbage);
    for (const auto& e : done) {
        CHECK(e.removed);
        CHECK_FALSE(tools_util::file_exists(d / e.segment.name));
    }
    for (const char* kept : {"ndshm_alive", "ndshm_alive_unknown_start", "ndshm_gone_persisted", "ndshm_no_pid"}) {
        CHECK(tools_util::file_exists(d / kept));
    }
    CHECK(ndshm::gc(d.opts()).empty());
}

TEST_CASE("gc removes unfinished segments only when nobody can finish them", "[inspect][gc]")
{
    temp_dir d;
    // gc removes an unfinished segment without a trailer only if its walk over /proc saw every process
    // that could hold it. Here /proc shows only this test's processes; on the machine at large some
    // processes may be closed to inspection (see the next part).
    const auto st = tools_util::run_with_own_proc([&] {
        const auto valid = tools_util::array_bytes(4); // made here: its creator (this process) is alive
        auto writing = valid;
        writing[0] = 0;
        tools_util::patch_trailer(writing, [](auto& t) { t.state = ndshm::detail::state_writing; });
        auto writing_dead = writing;
        tools_util::patch_trailer(writing_dead,
                                  [](auto& t) { t.creator_pid = static_cast<std::uint64_t>(tools_util::dead_pid()); });
        tools_util::write_file(d / "ndshm_writing_alive", writing);
        tools_util::write_file(d / "ndshm_writing_dead", writing_dead);
        const std::vector<unsigned char> zeros(8192, 0);
        tools_util::write_file(d / "ndshm_orphan", zeros);
        tools_util::write_file(d / "ndshm_open", zeros);
        tools_util::write_file(d / "ndshm_mapped", zeros);
        tools_util::write_file(d / "ndshm_foreign_like", std::vector<unsigned char>(8192, 1));

        // This process stands for creators still at work: one holds an fd, the other a mapping only.
        const int fd = ::open((d / "ndshm_open").c_str(), O_RDONLY | O_CLOEXEC);
        const int fd2 = ::open((d / "ndshm_mapped").c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fd2 < 0) {
            return 1;
        }
        void* p = ::mmap(nullptr, 8192, PROT_READ, MAP_SHARED, fd2, 0);
        ::close(fd2);
        if (p == MAP_FAILED) {
            return 2;
        }
        const auto s = ndshm::inspect("ndshm_open", d.opts());
        if (!s.users_known || s.users != std::vector<std::int64_t>{::getpid()}) {
            return 3;
        }
        if (ndshm::inspect("ndshm_mapped", d.opts()).users != std::vector<std::int64_t>{::getpid()}) {
            return 4;
        }
        if (names_of(ndshm::gc(d.opts())) != std::vector<std::string>{"ndshm_orphan", "ndshm_writing_dead"}) {
            return 5;
        }
        for (const char* kept : {"ndshm_writing_alive", "ndshm_open", "ndshm_mapped", "ndshm_foreign_like"}) {
            if (!tools_util::file_exists(d / kept)) { // the last one is corrupt: never collected
                return 6;
            }
        }
        ::close(fd);
        ::munmap(p, 8192);
        return names_of(ndshm::gc(d.opts())) == std::vector<std::string>{"ndshm_mapped", "ndshm_open"} ? 0 : 7;
    });
    CHECK(st.exited);
    CHECK(st.code == 0);

    // Here, on the machine at large: whatever gc can examine, it never removes a segment that a
    // process has open, and an orphan it does not remove, it reports as undecided.
    const std::vector<unsigned char> zeros(8192, 0);
    tools_util::write_file(d / "ndshm_orphan", zeros);
    tools_util::write_file(d / "ndshm_open", zeros);
    const int fd = ::open((d / "ndshm_open").c_str(), O_RDONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    std::vector<ndshm::gc_entry> undecided;
    const auto removed = names_of(ndshm::gc(d.opts(), false, &undecided));
    CHECK(tools_util::file_exists(d / "ndshm_open"));
    const bool orphan_doubted = !undecided.empty() && undecided[0].segment.name == "ndshm_orphan";
    CHECK((removed == std::vector<std::string>{"ndshm_orphan"} || orphan_doubted));
    CHECK(tools_util::file_exists(d / "ndshm_orphan") == orphan_doubted);
    ::close(fd);
}

TEST_CASE("inspect, list_segments and gc leave other users' segments alone", "[inspect][gc][security]")
{
    temp_dir d;
    REQUIRE(::chmod(d.path.c_str(), 0777) == 0);
    auto bytes = tools_util::array_bytes(4);
    const pid_t gone = tools_util::dead_pid();
    tools_util::patch_trailer(bytes, [&](auto& t) { t.creator_pid = static_cast<std::uint64_t>(gone); });
    // Made by `nobody`, with a dead creator: garbage for nobody, but not for root.
    const auto st = test_util::run_child([&] {
        if (!test_util::become_nobody()) {
            return 10;
        }
        tools_util::write_file(d / "ndshm_of_nobody", bytes, 0644);
        return 0;
    });
    REQUIRE(st.ok());
    CHECK(ndshm::list_segments(d.opts()).empty());
    CHECK_THROWS_AS(ndshm::inspect("ndshm_of_nobody", d.opts()), ndshm::permission_denied);
    CHECK(ndshm::gc(d.opts()).empty());
    CHECK(tools_util::file_exists(d / "ndshm_of_nobody"));
    ndshm::options allow = d.opts();
    allow.allow_other_users = true;
    const auto s = ndshm::inspect("ndshm_of_nobody", allow);
    CHECK(s.kind == segment_kind::array);
    CHECK(ndshm::gc_reason(s).empty()); // not the caller's
}
