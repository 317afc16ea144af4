// The `ndshm` command-line tool, run as a separate program (NDSHM_TEST_TOOL): ls, info, rm and gc as
// text and JSON (checked with Python's json module), the directory backend through --dir and
// $NDSHM_DIR, exit codes for wrong arguments, missing segments and refused ones, and other users'
// segments left alone.
#include <ndshm/all.hpp>

#include "test_util.hpp"
#include "tools_util.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <sstream>
#include <string>
#include <vector>

using ndshm::shared_ndarray;
using tools_util::program_result;
using tools_util::temp_dir;

namespace {

program_result ndshm_tool(std::vector<std::string> args, const std::vector<std::string>& env = {})
{
    args.insert(args.begin(), NDSHM_TEST_TOOL);
    return tools_util::run_program(args, env);
}

/// The line of `text` that starts with `name` (a row of `ndshm ls`), or "".
std::string row_of(const std::string& text, const std::string& name)
{
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind(name + " ", 0) == 0) {
            return line;
        }
    }
    return {};
}

/// Runs a Python check on JSON text: `code` sees the parsed document as `d`; exit 0 if it passes.
program_result check_json(const temp_dir& d, const std::string& json, const std::string& code)
{
    const std::string path = d / "doc.json";
    ::unlink(path.c_str());
    tools_util::write_file(path, std::vector<unsigned char>(json.begin(), json.end()));
    return tools_util::run_python("import json, sys\n"
                                  "d = json.load(open(sys.argv[1]))\n" +
                                      code,
                                  {path});
}

/// An ndshm array segment file whose creator is a dead process.
void write_orphan(const temp_dir& d, const std::string& name, bool persisted)
{
    auto b = tools_util::array_bytes(6, persisted);
    const pid_t gone = tools_util::dead_pid();
    tools_util::patch_trailer(b, [&](auto& t) { t.creator_pid = static_cast<std::uint64_t>(gone); });
    tools_util::write_file(d / name, b);
}

} // namespace

TEST_CASE("ndshm: help, wrong arguments and missing segments get clear messages and exit codes", "[tool]")
{
    const auto help = ndshm_tool({"--help"});
    CHECK(help.status.ok());
    CHECK_THAT(help.out, Catch::Contains("usage: ndshm") && Catch::Contains("exit status"));
    CHECK(ndshm_tool({"help"}).status.ok());
    CHECK(ndshm_tool({"--version"}).status.ok());

    const auto none = ndshm_tool({});
    CHECK(none.status.code == 2);
    CHECK_THAT(none.err, Catch::Contains("usage"));
    struct bad_call {
        std::vector<std::string> args;
        std::string message;
    };
    for (const auto& c : std::vector<bad_call>{{{"frob"}, "unknown command 'frob'"},
                                               {{"ls", "--bogus"}, "unknown option '--bogus'"},
                                               {{"ls", "extra"}, "takes no names"},
                                               {{"ls", "--dry-run"}, "--dry-run applies to gc only"},
                                               {{"rm", "--json", "ndshm_x"}, "--json applies to"},
                                               {{"info"}, "info needs a segment name"},
                                               {{"info", "ndshm_a", "ndshm_b"}, "one segment name"},
                                               {{"info", "bad/name"}, "invalid segment name"},
                                               {{"rm"}, "at least one segment name"},
                                               {{"--dir"}, "--dir needs a directory"},
                                               {{"--dir", "/nonexistent/ndshm_dir", "ls"}, "not a directory"}}) {
        const auto r = ndshm_tool(c.args);
        INFO(r.err);
        CHECK(r.status.code == 2);
        CHECK_THAT(r.err, Catch::Contains(c.message));
        CHECK(r.out.empty());
    }
    const auto env_dir = ndshm_tool({"ls"}, {"NDSHM_DIR=/nonexistent/ndshm_dir"});
    CHECK(env_dir.status.code == 2);
    CHECK_THAT(env_dir.err, Catch::Contains("$NDSHM_DIR"));

    const std::string missing = tools_util::test_name("missing");
    for (const std::vector<std::string>& args :
         {std::vector<std::string>{"info", missing}, std::vector<std::string>{"rm", missing}}) {
        const auto r = ndshm_tool(args);
        CHECK(r.status.code == 3);
        CHECK_THAT(r.err, Catch::Contains(missing) && Catch::Contains("No such file"));
    }
}

TEST_CASE("ndshm ls and info describe every kind of segment, as text and as JSON", "[tool][numpy]")
{
    temp_dir d;
    ndshm::options o = d.opts();
    o.name = "ndshm_live";
    auto live = shared_ndarray<double>::create({3, 4}, o);
    o.name = "ndshm_kept";
    auto kept = shared_ndarray<std::uint8_t>::create({5}, o);
    kept.persist();
    write_orphan(d, "ndshm_orphan", false);
    tools_util::write_file(d / "ndshm_corrupt", std::vector<unsigned char>(300, '?'));
    tools_util::write_file(d / "ndshm_unfinished", std::vector<unsigned char>(4096, 0));
    const auto py = tools_util::run_python("import numpy as np, sys\n"
                                           "np.lib.format.open_memmap(sys.argv[1], mode='w+', dtype='<f4', "
                                           "shape=(2, 2), fortran_order=True).flush()\n",
                                           {d / "ndshm_numpy"});
    REQUIRE(py.status.ok());
    const std::string me = std::to_string(::getpid());

    const auto ls = ndshm_tool({"--dir", d.path, "ls"});
    REQUIRE(ls.status.ok());
    CHECK(ls.err.empty());
    CHECK(ls.out.rfind("NAME", 0) == 0);
    const std::string row = row_of(ls.out, "ndshm_live");
    CHECK_THAT(row, Catch::Contains("array") && Catch::Contains("float64") && Catch::Contains("(3, 4)") &&
                        Catch::Contains(me + " alive") && Catch::Contains("0600") && Catch::Contains(" no"));
    CHECK_THAT(row_of(ls.out, "ndshm_kept"),
               Catch::Contains("uint8") && Catch::Contains("(5,)") && Catch::Contains("yes"));
    CHECK_THAT(row_of(ls.out, "ndshm_orphan"), Catch::Contains("dead"));
    CHECK_THAT(row_of(ls.out, "ndshm_corrupt"), Catch::Contains("corrupt") && Catch::Contains("neither a .npy"));
    CHECK_THAT(row_of(ls.out, "ndshm_unfinished"), Catch::Contains("unfinished"));
    CHECK_THAT(row_of(ls.out, "ndshm_numpy"), Catch::Contains("foreign npy") && Catch::Contains("float32"));
    CHECK(ndshm_tool({"--dir=" + d.path, "ls"}).out == ls.out);

    // The same through $NDSHM_DIR, as JSON.
    const auto js = ndshm_tool({"ls", "--json"}, {"NDSHM_DIR=" + d.path});
    REQUIRE(js.status.ok());
    const auto checked = check_json(
        d, js.out,
        "s = {x['name']: x for x in d['segments']}\n"
        "assert d['namespace'] == sys.argv[1].rsplit('/', 1)[0], d['namespace']\n"
        "assert len(s) == 6, sorted(s)\n"
        "live = s['ndshm_live']\n"
        "assert live['kind'] == 'array' and live['dtype'] == 'float64', live\n"
        "assert live['shape'] == [3, 4] and live['mode'] == '0600', live\n"
        "assert live['creator']['pid'] == " +
            me +
            " and live['creator']['status'] == 'alive', live\n"
            "assert live['trailer']['kind'] == 1 and live['persisted'] is False\n"
            "assert s['ndshm_kept']['persisted'] is True\n"
            "assert s['ndshm_orphan']['creator']['status'] == 'dead'\n"
            "assert s['ndshm_numpy']['kind'] == 'foreign npy'\n"
            "assert s['ndshm_numpy']['fortran_order'] is True\n"
            "assert s['ndshm_numpy']['trailer'] is None\n"
            "assert s['ndshm_corrupt']['kind'] == 'corrupt' and s['ndshm_corrupt']['problem']\n"
            "assert s['ndshm_unfinished']['kind'] == 'unfinished'\n");
    INFO(js.out);
    CHECK(checked.err.empty());
    CHECK(checked.status.ok());

    const auto info = ndshm_tool({"--dir", d.path, "info", "ndshm_live"});
    REQUIRE(info.status.ok());
    CHECK_THAT(info.out, Catch::Contains("kind:           array") && Catch::Contains("shape:          (3, 4)") &&
                             Catch::Contains("trailer:        version 1") && Catch::Contains("pid " + me) &&
                             Catch::Contains("alive") && Catch::Contains("open/mapped by: pids " + me) &&
                             Catch::Contains("gc:             keeps it"));
    const auto info_json = ndshm_tool({"--dir", d.path, "info", "--json", "ndshm_orphan"});
    REQUIRE(info_json.status.ok());
    const auto checked_info = check_json(d, info_json.out,
                                         "assert d['name'] == 'ndshm_orphan' and d['kind'] == 'array'\n"
                                         "assert d['creator']['status'] == 'dead', d['creator']\n"
                                         "assert d['trailer']['state'] == 'ready' and d['users'] == []\n"
                                         "assert d['data_offset'] == 4096 and d['data_bytes'] == 48\n");
    INFO(info_json.out);
    CHECK(checked_info.err.empty());
    CHECK(checked_info.status.ok());
    const auto corrupt = ndshm_tool({"--dir", d.path, "info", "ndshm_corrupt"});
    CHECK(corrupt.status.code == 5); // like fsck: a problem found is a non-zero exit
    CHECK_THAT(corrupt.out, Catch::Contains("corrupt") && Catch::Contains("problem:") && Catch::Contains("PROBLEM:"));
}

TEST_CASE("ndshm gc and rm remove only what they should", "[tool]")
{
    temp_dir d;
    REQUIRE(::chmod(d.path.c_str(), 0777) == 0);
    write_orphan(d, "ndshm_orphan", false);
    write_orphan(d, "ndshm_orphan_persisted", true);
    ndshm::options o = d.opts();
    o.name = "ndshm_live";
    auto live = shared_ndarray<double>::create({4}, o);
    tools_util::write_file(d / "ndshm_corrupt", std::vector<unsigned char>(300, '?'));
    tools_util::write_file(d / "plainfile", std::vector<unsigned char>(300, '?'));
    auto nobodys = tools_util::array_bytes(4);
    tools_util::patch_trailer(nobodys,
                              [](auto& t) { t.creator_pid = static_cast<std::uint64_t>(tools_util::dead_pid()); });
    const auto st = test_util::run_child([&] {
        if (!test_util::become_nobody()) {
            return 10;
        }
        tools_util::write_file(d / "ndshm_of_nobody", nobodys, 0644);
        return 0;
    });
    REQUIRE(st.ok());

    const auto dry = ndshm_tool({"--dir", d.path, "gc", "--dry-run"});
    REQUIRE(dry.status.ok());
    CHECK(dry.out.rfind("would remove ndshm_orphan: its creator is dead", 0) == 0);
    CHECK(dry.out.find('\n') == dry.out.size() - 1); // exactly one line
    CHECK(tools_util::file_exists(d / "ndshm_orphan"));
    const auto dry_json = ndshm_tool({"--dir", d.path, "gc", "--dry-run", "--json"});
    const auto checked = check_json(d, dry_json.out,
                                    "assert d['dry_run'] is True\n"
                                    "assert [e['name'] for e in d['entries']] == ['ndshm_orphan'], d\n"
                                    "assert d['entries'][0]['removed'] is False\n");
    CHECK(checked.err.empty());
    CHECK(checked.status.ok());

    const auto gc = ndshm_tool({"--dir", d.path, "gc"});
    CHECK(gc.status.ok());
    CHECK(gc.out.rfind("removed ndshm_orphan: ", 0) == 0);
    CHECK_FALSE(tools_util::file_exists(d / "ndshm_orphan"));
    for (const char* kept : {"ndshm_orphan_persisted", "ndshm_live", "ndshm_corrupt", "plainfile", "ndshm_of_nobody"}) {
        CHECK(tools_util::file_exists(d / kept));
    }
    CHECK(ndshm_tool({"--dir", d.path, "gc"}).out.empty());

    // rm goes on after a failure and reports the first one's code.
    const auto rm = ndshm_tool({"--dir", d.path, "rm", "ndshm_orphan_persisted", "ndshm_gone", "ndshm_corrupt"});
    CHECK(rm.status.code == 3);
    CHECK_THAT(rm.err, Catch::Contains("ndshm_gone"));
    CHECK_FALSE(tools_util::file_exists(d / "ndshm_orphan_persisted"));
    CHECK_FALSE(tools_util::file_exists(d / "ndshm_corrupt"));

    const auto plain = ndshm_tool({"--dir", d.path, "rm", "plainfile"});
    CHECK(plain.status.code == 4);
    CHECK_THAT(plain.err, Catch::Contains("not an ndshm segment"));
    CHECK(tools_util::file_exists(d / "plainfile"));

    for (const char* cmd : {"rm", "info"}) {
        const auto other = ndshm_tool({"--dir", d.path, cmd, "ndshm_of_nobody"});
        CHECK(other.status.code == 4);
        CHECK_THAT(other.err, Catch::Contains("belongs to uid"));
    }
    CHECK(tools_util::file_exists(d / "ndshm_of_nobody"));
    CHECK(row_of(ndshm_tool({"--dir", d.path, "ls"}).out, "ndshm_of_nobody").empty());

    const auto rm_live = ndshm_tool({"--dir", d.path, "rm", "ndshm_live"});
    CHECK(rm_live.status.ok());
    CHECK_FALSE(tools_util::file_exists(d / "ndshm_live"));
    live(3) = 1.0; // the mapping stays valid
    CHECK(live(3) == 1.0);
}

TEST_CASE("ndshm works on POSIX shared memory by default", "[tool]")
{
    ndshm::options o;
    o.name = tools_util::test_name("tool");
    tools_util::shm_guard guard(o.name);
    auto a = shared_ndarray<std::int64_t>::create({7}, o);
    const std::string me = std::to_string(::getpid());

    const auto ls = ndshm_tool({"ls"});
    REQUIRE(ls.status.ok());
    CHECK_THAT(row_of(ls.out, o.name),
               Catch::Contains("array") && Catch::Contains("int64") && Catch::Contains(me + " alive"));
    temp_dir d;
    const auto js = ndshm_tool({"ls", "--json"});
    REQUIRE(js.status.ok());
    const auto checked = check_json(d, js.out,
                                    "assert d['namespace'] == '/dev/shm'\n"
                                    "assert any(x['name'] == '" +
                                        o.name + "' for x in d['segments'])\n");
    CHECK(checked.status.ok());
    CHECK(ndshm_tool({"info", o.name}).status.ok());
    CHECK(ndshm_tool({"gc", "--dry-run"}).out.find(o.name) == std::string::npos);
    const auto rm = ndshm_tool({"rm", o.name});
    CHECK(rm.status.ok());
    CHECK_FALSE(test_util::shm_exists(o.name));
    CHECK(ndshm_tool({"info", o.name}).status.code == 3);
}

namespace {

/// Writes `value` at byte `off` of the file `path` (a stray write into a segment).
template <class T>
void poke(const std::string& path, std::size_t off, T value)
{
    const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    REQUIRE(::pwrite(fd, &value, sizeof value, static_cast<off_t>(off)) == static_cast<ssize_t>(sizeof value));
    ::close(fd);
}

struct tagged {
    std::string label;
    xt::xarray<double> values;
    template <class A>
    void serialize(A& ar)
    {
        ar(label, values);
    }
};

} // namespace

TEST_CASE("ndshm info checks a queue's, a channel's, an object's and a lock's internals, and exits 5 like fsck",
          "[tool]")
{
    temp_dir d;
    ndshm::options o = d.opts();
    const auto info = [&](const std::string& name) { return ndshm_tool({"--dir", d.path, "info", name}); };

    o.name = "ndshm_q";
    auto q = ndshm::array_queue::create(4, o);
    auto item = shared_ndarray<double>::create({3}, d.opts());
    const std::string item_name = item.name();
    q.push(std::move(item));
    o.name = "ndshm_ch";
    auto ch = ndshm::channel<double>::create({4}, 2, o);
    o.name = "ndshm_obj";
    tagged t{"t", xt::xarray<double>{1.0, 2.0}};
    auto obj = ndshm::share(t, o);
    o.name = "ndshm_arr";
    auto arr = shared_ndarray<double>::create({4}, o);

    // Healthy: exit 0, and the internals are described.
    const auto healthy_q = info("ndshm_q");
    CHECK(healthy_q.status.ok());
    CHECK_THAT(healthy_q.out, Catch::Contains("queue: capacity 4, 1 queued") &&
                                  Catch::Contains("the queue's lock: free") && Catch::Contains("check:          ok"));
    const auto healthy_ch = info("ndshm_ch");
    CHECK(healthy_ch.status.ok());
    CHECK_THAT(healthy_ch.out, Catch::Contains("channel: 2 slots: 2 free"));
    const auto healthy_obj = info("ndshm_obj");
    CHECK(healthy_obj.status.ok());
    CHECK_THAT(healthy_obj.out, Catch::Contains("object: 1 arrays"));
    CHECK(info("ndshm_arr").status.ok());

    SECTION("a queued array removed behind the queue's back")
    {
        ndshm::unlink(item_name, d.opts());
        const auto r = info("ndshm_q");
        CHECK(r.status.code == 5);
        CHECK_THAT(r.out, Catch::Contains("PROBLEM:") && Catch::Contains(item_name) && Catch::Contains("is gone"));
    }
    SECTION("a queue state overwritten")
    {
        poke<std::uint64_t>(d / "ndshm_q", 4096 + 24, 99); // head 0, count 99 > capacity 4
        const auto r = info("ndshm_q");
        CHECK(r.status.code == 5);
        CHECK_THAT(r.out, Catch::Contains("the queue's state is corrupt"));
        const auto js = ndshm_tool({"--dir", d.path, "info", "--json", "ndshm_q"});
        CHECK(js.status.code == 5);
        const auto checked = check_json(d, js.out,
                                        "assert d['internals']['checked'] is True\n"
                                        "assert any('corrupt' in p for p in d['problems']), d['problems']\n");
        CHECK(checked.status.ok());
    }
    SECTION("a channel slot held by a process that died, and a ring pointing at a free slot")
    {
        test_util::event holding, never;
        ch.publish(ch.loan());
        const pid_t pid = test_util::fork_child([&] {
            auto in = ndshm::channel<double>::attach("ndshm_ch", d.opts());
            auto s = in.receive();
            holding.set(s.empty() ? 2 : 1);
            never.wait();
            return 0;
        });
        REQUIRE(holding.wait() == 1);
        ::kill(pid, SIGKILL);
        test_util::wait_child(pid);
        auto r = info("ndshm_ch");
        CHECK(r.status.code == 5);
        CHECK_THAT(r.out, Catch::Contains("is held by a process that is gone") && Catch::Contains("1 received"));
        // tail one past head: the ring now claims a published slot that is not there.
        const std::size_t ctl = ndshm::detail::trailer_offset(4096 + 2 * 4 * sizeof(double)) + 256;
        poke<std::uint64_t>(d / "ndshm_ch", ctl + offsetof(ndshm::detail::channel_control, tail), 2);
        r = info("ndshm_ch");
        CHECK(r.status.code == 5);
        CHECK_THAT(r.out, Catch::Contains("the ring holds 1 published slots, the records 0"));
    }
    SECTION("an object's table of contents pointing outside it")
    {
        poke<std::uint64_t>(d / "ndshm_obj", 4096 + 32, std::uint64_t(1) << 40);
        const auto r = info("ndshm_obj");
        CHECK(r.status.code == 5);
        CHECK_THAT(r.out, Catch::Contains("PROBLEM:") && Catch::Contains("outside"));
    }
    SECTION("lock bytes overwritten, and a lock held by a stopped process")
    {
        const auto* tr = ndshm::detail::array_access::mapping_of(arr)->get_trailer();
        const std::size_t lock_at = static_cast<std::size_t>(reinterpret_cast<const unsigned char*>(tr->lock) -
                                                             ndshm::detail::array_access::mapping_of(arr)->base());
        test_util::event holding, release;
        const pid_t pid = test_util::fork_child([&] {
            ndshm::array_lock l(arr);
            l.lock();
            holding.set();
            release.wait();
            l.unlock();
            return 0;
        });
        REQUIRE(holding.wait() == 1);
        REQUIRE(test_util::stop_child(pid));
        auto r = info("ndshm_arr");
        CHECK(r.status.code == 5);
        CHECK_THAT(r.out, Catch::Contains("the lock: held by thread " + std::to_string(pid)) &&
                              Catch::Contains("which is stopped"));
        REQUIRE(test_util::continue_child(pid));
        release.set();
        CHECK(test_util::wait_child(pid).ok());
        CHECK(info("ndshm_arr").status.ok());
        poke<std::uint32_t>(d / "ndshm_arr", lock_at + 4, 0xdeadbeef); // the lock's format tag
        r = info("ndshm_arr");
        CHECK(r.status.code == 5);
        CHECK_THAT(r.out, Catch::Contains("the lock is corrupt"));
        ndshm::detail::init_lock(const_cast<unsigned char*>(tr->lock));
    }
}
