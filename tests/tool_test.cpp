// The `ndshm` command-line tool, run as a separate program (NDSHM_TEST_TOOL): ls, info, rm and gc as
// text and JSON (checked with Python's json module), the directory backend through --dir and
// $NDSHM_DIR, exit codes for wrong arguments, missing segments and refused ones, and other users'
// segments left alone; ls --all and its kinds, the summaries of queues, channels and objects, -h, the
// totals line, the ATTACHED count, and names given as /NAME or /dev/shm/NAME.
#include <ndshm/all.hpp>

#include "test_util.hpp"
#include "tools_util.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <pwd.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <sstream>
#include <regex>
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

/// The value in column `column` (a header of `ndshm ls`) of the row of `name`, or "" if either is missing:
/// columns are aligned under their headers, so the value is what lies under the header, trimmed.
std::string column_of(const std::string& text, const std::string& name, const std::string& column)
{
    const std::string header = text.substr(0, text.find('\n'));
    const std::size_t at = header.find(column);
    const std::string row = row_of(text, name);
    if (at == std::string::npos || row.size() <= at) {
        return {};
    }
    const std::size_t next = header.find_first_not_of(' ', header.find(' ', at));
    std::string value = row.substr(at, next == std::string::npos ? std::string::npos : next - at);
    while (!value.empty() && value.back() == ' ') {
        value.pop_back();
    }
    return value;
}

/// The last line of `text` (the totals line of `ndshm ls`).
std::string last_line(const std::string& text)
{
    const std::size_t end = text.find_last_not_of('\n');
    if (end == std::string::npos) {
        return {};
    }
    const std::size_t start = text.rfind('\n', end);
    return text.substr(start == std::string::npos ? 0 : start + 1,
                       end - (start == std::string::npos ? 0 : start + 1) + 1);
}

/// Checks that a message of the tool speaks of its own commands: one "ndshm" prefix, nothing about the
/// library's functions or options.
void check_own_words(const std::string& err)
{
    INFO(err);
    CHECK_THAT(err, !Catch::Contains("ndshm: ndshm:") && !Catch::Contains("options::") && !Catch::Contains("inspect"));
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
    CHECK_THAT(help.out, Catch::Contains("Usage: ndshm") && Catch::Contains("Exit status") && Catch::Contains("ls") &&
                             Catch::Contains("/dev/shm/NAME"));
    CHECK(ndshm_tool({"help"}).status.ok());
    CHECK(ndshm_tool({"--version"}).status.ok());

    const auto none = ndshm_tool({});
    CHECK(none.status.code == 2);
    CHECK_THAT(none.err, Catch::Contains("Usage: ndshm [OPTIONS] [SUBCOMMAND]"));
    struct bad_call {
        std::vector<std::string> args;
        std::string message;
    };
    for (const auto& c : std::vector<bad_call>{
             {{"frob"}, "ndshm: unknown command 'frob'"},
             {{"--bogus"}, "ndshm: unknown option '--bogus'"},
             {{"-h"}, "-h means human-readable sizes (ndshm ls -h); --help prints the help"},
             {{"ls", "--bogus"}, "ndshm ls: The following argument was not expected: --bogus"},
             {{"ls", "extra"}, "ndshm ls: The following argument was not expected: extra"},
             {{"ls", "--dry-run"}, "not expected: --dry-run"},
             {{"rm", "--json", "ndshm_x"}, "ndshm rm: The following argument was not expected: --json"},
             {{"info"}, "ndshm info: NAME is required"},
             {{"info", "ndshm_a", "ndshm_b"}, "ndshm info: NAME: At Most 1"},
             {{"info", "bad name"}, "ndshm info: invalid segment name 'bad name'"},
             {{"info", "/tmp/ndshm_x"}, "'/tmp/ndshm_x' is not a segment name, nor a path in /dev/shm"},
             {{"rm", "ndshm_ok", "/dev/shm/sub/ndshm_x"}, "ndshm rm: '/dev/shm/sub/ndshm_x' is not a segment name"},
             {{"rm"}, "ndshm rm: NAME is required"},
             {{"--dir"}, "--dir: 1 required"},
             {{"--dir", "/nonexistent/ndshm_dir", "ls"}, "not a directory"}}) {
        const auto r = ndshm_tool(c.args);
        INFO(r.err);
        CHECK(r.status.code == 2);
        CHECK_THAT(r.err, Catch::Contains(c.message) && Catch::Contains("Try 'ndshm"));
        check_own_words(r.err);
        CHECK(r.out.empty());
    }
    const auto ls_help = ndshm_tool({"ls", "--help"});
    CHECK(ls_help.status.ok());
    CHECK_THAT(ls_help.out, Catch::Contains("-a,--all") && Catch::Contains("-h,--human-readable") &&
                                Catch::Contains("ATTACHED") && Catch::Contains("Exit status"));
    const auto env_dir = ndshm_tool({"ls"}, {"NDSHM_DIR=/nonexistent/ndshm_dir"});
    CHECK(env_dir.status.code == 2);
    CHECK_THAT(env_dir.err, Catch::Contains("$NDSHM_DIR"));

    const std::string missing = tools_util::test_name("missing");
    for (const std::string& arg : {missing, "/" + missing, "/dev/shm/" + missing}) {
        const auto info = ndshm_tool({"info", arg});
        CHECK(info.status.code == 3);
        CHECK(info.err == "ndshm info: no such segment '" + missing + "' in /dev/shm ('ndshm ls --all' lists them)\n");
        const auto rm = ndshm_tool({"rm", arg});
        CHECK(rm.status.code == 3);
        CHECK(rm.err == "ndshm rm: cannot remove '" + missing + "': no such segment in /dev/shm\n");
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
    CHECK_THAT(row, Catch::Contains("array") && Catch::Contains("float64 (3, 4)") && Catch::Contains(me + " alive") &&
                        Catch::Contains("0600") && Catch::Contains(" no"));
    CHECK_THAT(row_of(ls.out, "ndshm_kept"),
               Catch::Contains("uint8") && Catch::Contains("(5,)") && Catch::Contains("yes"));
    CHECK_THAT(row_of(ls.out, "ndshm_orphan"), Catch::Contains("dead"));
    CHECK_THAT(row_of(ls.out, "ndshm_corrupt"), Catch::Contains("corrupt") && Catch::Contains("neither a .npy"));
    CHECK_THAT(row_of(ls.out, "ndshm_unfinished"), Catch::Contains("unfinished"));
    CHECK_THAT(row_of(ls.out, "ndshm_numpy"), Catch::Contains("foreign npy") && Catch::Contains("float32"));
    // The same listing through --dir=DIR (ages may have ticked over between the two runs).
    const auto without_ages = [](const std::string& text) {
        std::string t = std::regex_replace(text, std::regex("\\b[0-9]+[smhd]\\b"), "AGE");
        // ... and the file system's space, which other processes change meanwhile.
        t = std::regex_replace(t, std::regex("[0-9]+ used, [0-9]+ free"), "SPACE");
        return std::regex_replace(t, std::regex(" +"), " "); // and the column widths with them
    };
    CHECK(without_ages(ndshm_tool({"--dir=" + d.path, "ls"}).out) == without_ages(ls.out));

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
        CHECK_THAT(other.err,
                   Catch::Contains("'ndshm_of_nobody' belongs to uid " + std::to_string(::getpwnam("nobody")->pw_uid) +
                                   ", not to uid " + std::to_string(::geteuid())));
        check_own_words(other.err);
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

TEST_CASE("ndshm ls --all shows foreign .npy files, segments named by programs and other files, each of its kind",
          "[tool][numpy]")
{
    temp_dir d;
    ndshm::options o = d.opts();
    o.name = "ndshm_auto";
    auto generated = shared_ndarray<double>::create({2}, o);
    o.name = "named_by_me";
    auto named = shared_ndarray<std::int32_t>::create({3}, o);
    const auto py = tools_util::run_python("import numpy as np, sys\n"
                                           "np.lib.format.open_memmap(sys.argv[1], mode='w+', dtype='<i2', "
                                           "shape=(4, 5)).flush()\n",
                                           {d / "made_by_numpy.npy"});
    REQUIRE(py.status.ok());
    tools_util::write_file(d / "pulse-shm-42", std::vector<unsigned char>(100, 'x'));
    tools_util::write_file(d / "empty_file", {});

    const auto ls = ndshm_tool({"--dir", d.path, "ls"});
    REQUIRE(ls.status.ok());
    CHECK(column_of(ls.out, "ndshm_auto", "KIND") == "array");
    for (const char* hidden : {"named_by_me", "made_by_numpy.npy", "pulse-shm-42", "empty_file"}) {
        CHECK(row_of(ls.out, hidden).empty());
    }
    CHECK(last_line(ls.out).rfind("total 1 segments, ", 0) == 0);

    for (const char* flag : {"--all", "-a"}) {
        const auto all = ndshm_tool({"--dir", d.path, "ls", flag});
        REQUIRE(all.status.ok());
        INFO(all.out);
        CHECK(column_of(all.out, "ndshm_auto", "KIND") == "array");
        CHECK(column_of(all.out, "named_by_me", "KIND") == "array");
        CHECK(column_of(all.out, "named_by_me", "CONTENTS") == "int32 (3,)");
        CHECK(column_of(all.out, "made_by_numpy.npy", "KIND") == "foreign npy");
        CHECK(column_of(all.out, "made_by_numpy.npy", "CONTENTS") == "int16 (4, 5)");
        CHECK(column_of(all.out, "made_by_numpy.npy", "CREATOR") == "-");
        CHECK(column_of(all.out, "pulse-shm-42", "KIND") == "other");
        CHECK(column_of(all.out, "pulse-shm-42", "NOTE").empty()); // nothing is wrong with another program's file
        CHECK(column_of(all.out, "empty_file", "KIND") == "other");
        CHECK(last_line(all.out).rfind("total 5 files, ", 0) == 0);
    }
    const auto js = ndshm_tool({"--dir", d.path, "ls", "--all", "--json"});
    REQUIRE(js.status.ok());
    const auto checked = check_json(d, js.out,
                                    "k = {x['name']: x['kind'] for x in d['segments']}\n"
                                    "assert d['all'] is True\n"
                                    "assert k == {'ndshm_auto': 'array', 'named_by_me': 'array', "
                                    "'made_by_numpy.npy': 'foreign npy', 'pulse-shm-42': 'other', "
                                    "'empty_file': 'other'}, k\n"
                                    "assert d['totals']['count'] == 5\n");
    INFO(js.out);
    CHECK(checked.err.empty());
    CHECK(checked.status.ok());

    // info takes the files --all shows; rm refuses the ones that are not ndshm's.
    const auto info = ndshm_tool({"--dir", d.path, "info", "pulse-shm-42"});
    CHECK(info.status.ok());
    CHECK_THAT(info.out, Catch::Contains("kind:           other"));
    const auto rm = ndshm_tool({"--dir", d.path, "rm", "made_by_numpy.npy"});
    CHECK(rm.status.code == 4);
    CHECK_THAT(rm.err, Catch::Contains("'made_by_numpy.npy' is not an ndshm segment"));
    CHECK(tools_util::file_exists(d / "made_by_numpy.npy"));
}

TEST_CASE("ndshm ls summarises what queues, channels and objects hold instead of their uint8 layout", "[tool]")
{
    temp_dir d;
    ndshm::options o = d.opts();
    o.name = "ndshm_q";
    auto q = ndshm::array_queue::create(4, o);
    q.push(shared_ndarray<double>::create({3}, d.opts()));
    q.push(shared_ndarray<double>::create({3}, d.opts()));
    o.name = "ndshm_ch";
    auto ch = ndshm::channel<double>::create({4}, 3, o);
    auto loaned = ch.loan();
    ch.publish(ch.loan());
    o.name = "ndshm_obj";
    tagged t{"label", xt::xarray<double>{1.0, 2.0}};
    auto obj = ndshm::share(t, o);

    const auto ls = ndshm_tool({"--dir", d.path, "ls"});
    REQUIRE(ls.status.ok());
    INFO(ls.out);
    CHECK(column_of(ls.out, "ndshm_q", "KIND") == "queue");
    CHECK(column_of(ls.out, "ndshm_q", "CONTENTS") == "2 of 4 queued");
    CHECK(column_of(ls.out, "ndshm_ch", "KIND") == "channel");
    CHECK(column_of(ls.out, "ndshm_ch", "CONTENTS") == "2 of 3 slots in use (1 loaned, 1 published, 0 received)");
    CHECK(column_of(ls.out, "ndshm_obj", "KIND") == "object");
    CHECK_THAT(column_of(ls.out, "ndshm_obj", "CONTENTS"), Catch::StartsWith("1 array, a blob of "));
    CHECK_THAT(ls.out, !Catch::Contains("uint8"));

    const auto js = ndshm_tool({"--dir", d.path, "ls", "--json"});
    REQUIRE(js.status.ok());
    const auto checked = check_json(d, js.out,
                                    "s = {x['name']: x for x in d['segments']}\n"
                                    "q = s['ndshm_q']['contents']\n"
                                    "assert (q['queued'], q['capacity'], q['closed']) == (2, 4, 0), q\n"
                                    "c = s['ndshm_ch']['contents']\n"
                                    "assert (c['in_use'], c['slots'], c['loaned'], c['published']) == (2, 3, 1, 1), c\n"
                                    "o = s['ndshm_obj']['contents']\n"
                                    "assert o['arrays'] == 1 and o['blob_bytes'] > 0, o\n"
                                    "assert o['summary'].startswith('1 array'), o\n");
    INFO(js.out);
    CHECK(checked.err.empty());
    CHECK(checked.status.ok());

    CHECK_THAT(ndshm_tool({"--dir", d.path, "info", "ndshm_q"}).out, Catch::Contains("contents:       2 of 4 queued"));
    ch.publish(std::move(loaned));
    CHECK(column_of(ndshm_tool({"--dir", d.path, "ls"}).out, "ndshm_ch", "CONTENTS") ==
          "2 of 3 slots in use (0 loaned, 2 published, 0 received)");
}

TEST_CASE("ndshm ls prints exact sizes, -h human-readable ones, and a totals line with the file system's space",
          "[tool]")
{
    temp_dir d;
    ndshm::options o = d.opts();
    o.name = "ndshm_big";
    auto big = shared_ndarray<double>::create({3 * 1024 * 1024 / 8}, o); // 3 MiB of data
    o.name = "ndshm_small";
    auto small = shared_ndarray<std::uint8_t>::create({10}, o);
    const auto big_info = ndshm::inspect("ndshm_big", d.opts());
    const auto small_info = ndshm::inspect("ndshm_small", d.opts());
    tools_util::write_file(d / "ndshm_tiny", std::vector<unsigned char>(300, '?'));

    const auto ls = ndshm_tool({"--dir", d.path, "ls"});
    REQUIRE(ls.status.ok());
    INFO(ls.out);
    CHECK(column_of(ls.out, "ndshm_big", "SIZE") == std::to_string(big_info.bytes));
    CHECK(column_of(ls.out, "ndshm_small", "SIZE") == std::to_string(small_info.bytes));
    CHECK(column_of(ls.out, "ndshm_tiny", "SIZE") == "300");
    const std::uint64_t sum = big_info.bytes + small_info.bytes + 300;
    const std::string total = last_line(ls.out);
    CHECK_THAT(total, Catch::StartsWith("total 3 segments, " + std::to_string(sum) + " bytes"));

    // The file system's numbers, as df computes them: its size is fixed, used and free move with others.
    struct statvfs v {};
    REQUIRE(::statvfs(d.path.c_str(), &v) == 0);
    const std::uint64_t fs_size = std::uint64_t(v.f_blocks) * v.f_frsize;
    unsigned long long used = 0, free_bytes = 0, size = 0;
    const std::size_t at = total.find("; " + d.path + ": ");
    REQUIRE(at != std::string::npos);
    REQUIRE(std::sscanf(total.c_str() + at + d.path.size() + 4, "%llu used, %llu free of %llu", &used, &free_bytes,
                        &size) == 3);
    CHECK(size == fs_size);
    CHECK(used + free_bytes <= size);
    CHECK(used >= big_info.allocated);

    const auto human = ndshm_tool({"--dir", d.path, "ls", "-h"});
    REQUIRE(human.status.ok());
    INFO(human.out);
    CHECK(column_of(human.out, "ndshm_big", "SIZE") == "3.0M");
    CHECK(small_info.bytes == 4416); // 4096 of header, 10 of data, then the trailer at offset 4160
    CHECK(column_of(human.out, "ndshm_small", "SIZE") == "4.3K");
    CHECK(column_of(human.out, "ndshm_tiny", "SIZE") == "300"); // under 1 KiB: as is
    CHECK_THAT(last_line(human.out), Catch::StartsWith("total 3 segments, 3.0M") && Catch::Contains(" free of ") &&
                                         !Catch::Contains("bytes"));
    CHECK(ndshm_tool({"--dir", d.path, "ls", "--human-readable"}).out == human.out);
    CHECK(ndshm_tool({"-h", "--dir", d.path, "ls"}).status.code == 2); // -h belongs to ls

    const auto js = ndshm_tool({"--dir", d.path, "ls", "--json"});
    const auto checked = check_json(d, js.out,
                                    "t = d['totals']\n"
                                    "assert t['count'] == 3 and t['bytes'] == " +
                                        std::to_string(sum) +
                                        ", t\n"
                                        "assert t['filesystem']['size'] == " +
                                        std::to_string(fs_size) + ", t\n");
    INFO(js.out);
    CHECK(checked.status.ok());
}

TEST_CASE("ndshm ls counts the processes attached to each segment, like ipcs's nattch", "[tool]")
{
    temp_dir d;
    // In a PID namespace with a /proc of its own, every process is readable: the counts are exact.
    const auto st = tools_util::run_with_own_proc([&] {
        test_util::event created, attached, release;
        ndshm::options o = d.opts();
        o.name = "ndshm_shared";
        const pid_t child = test_util::fork_child([&] {
            if (created.wait() != 1) {
                return 1;
            }
            auto a = shared_ndarray<double>::attach("ndshm_shared", d.opts()); // this process's own mapping
            attached.set(a.size() == 8 ? 1 : 2);
            release.wait();
            return 0;
        });
        tools_util::child_guard guard(child);
        auto a = shared_ndarray<double>::create({8}, o);
        created.set();
        if (attached.wait() != 1) {
            return 10;
        }
        const auto both = ndshm_tool({"--dir", d.path, "ls"});
        if (column_of(both.out, "ndshm_shared", "ATTACHED") != "2") {
            std::fprintf(stderr, "with the child attached:\n%s%s", both.out.c_str(), both.err.c_str());
            return 11;
        }
        release.set();
        if (!guard.wait().ok()) {
            return 12;
        }
        const auto one = ndshm_tool({"--dir", d.path, "ls"});
        if (column_of(one.out, "ndshm_shared", "ATTACHED") != "1") {
            std::fprintf(stderr, "after the child left:\n%s%s", one.out.c_str(), one.err.c_str());
            return 13;
        }
        a.persist();
        a = shared_ndarray<double>();
        const auto none = ndshm_tool({"--dir", d.path, "ls"});
        ndshm::unlink("ndshm_shared", d.opts());
        if (column_of(none.out, "ndshm_shared", "ATTACHED") != "0") {
            std::fprintf(stderr, "with no process:\n%s%s", none.out.c_str(), none.err.c_str());
            return 14;
        }
        return 0;
    });
    if (st.exited && st.code == 77) {
        WARN("no PID namespace here: the exact counts are not checked");
    } else {
        CHECK(st.ok());
        CHECK(st.code == 0);
    }

    // Outside such a namespace some processes may be unreadable: then the count is a lower bound ("1+").
    ndshm::options o = d.opts();
    o.name = "ndshm_mine";
    auto a = shared_ndarray<double>::create({8}, o);
    const std::string count = column_of(ndshm_tool({"--dir", d.path, "ls"}).out, "ndshm_mine", "ATTACHED");
    CHECK((count == "1" || count == "1+"));
}

TEST_CASE("ndshm info and rm take /NAME and /dev/shm/NAME (DIR/NAME with --dir)", "[tool]")
{
    ndshm::options o;
    o.name = tools_util::test_name("path");
    tools_util::shm_guard guard(o.name);
    auto a = shared_ndarray<float>::create({5}, o);
    a.persist();
    for (const std::string& arg : {o.name, "/" + o.name, "/dev/shm/" + o.name}) {
        const auto info = ndshm_tool({"info", arg});
        INFO(arg << "\n" << info.err);
        CHECK(info.status.ok());
        CHECK_THAT(info.out, Catch::StartsWith("name:           " + o.name + "\n"));
        const auto js = ndshm_tool({"info", "--json", arg});
        CHECK(js.status.ok());
        CHECK_THAT(js.out, Catch::Contains("\"name\": \"" + o.name + "\""));
    }
    const auto rm = ndshm_tool({"rm", "/dev/shm/" + o.name});
    CHECK(rm.status.ok());
    CHECK(rm.err.empty());
    CHECK_FALSE(test_util::shm_exists(o.name));

    o.name = tools_util::test_name("slash");
    tools_util::shm_guard guard2(o.name);
    auto b = shared_ndarray<float>::create({5}, o);
    b.persist();
    CHECK(ndshm_tool({"rm", "/" + o.name}).status.ok());
    CHECK_FALSE(test_util::shm_exists(o.name));

    // With a directory backend, its own paths; /dev/shm/NAME names another namespace and is refused.
    temp_dir d;
    ndshm::options od = d.opts();
    od.name = "ndshm_in_dir";
    auto c = shared_ndarray<float>::create({5}, od);
    c.persist();
    CHECK(ndshm_tool({"--dir", d.path, "info", d / "ndshm_in_dir"}).status.ok());
    CHECK(ndshm_tool({"--dir", d.path + "/", "info", d / "ndshm_in_dir"}).status.ok());
    const auto elsewhere = ndshm_tool({"--dir", d.path, "info", "/dev/shm/ndshm_in_dir"});
    CHECK(elsewhere.status.code == 2);
    CHECK_THAT(elsewhere.err, Catch::Contains("is not a segment name, nor a path in " + d.path + " (--dir)"));
    check_own_words(elsewhere.err);
    CHECK(ndshm_tool({"--dir", d.path, "rm", d / "ndshm_in_dir"}).status.ok());
    CHECK_FALSE(tools_util::file_exists(d / "ndshm_in_dir"));
}
