// ndshm: list, inspect and remove the calling user's ndshm shared-memory segments.
//
//   ndshm [--dir DIR] ls [--json]
//   ndshm [--dir DIR] info [--json] NAME
//   ndshm [--dir DIR] rm NAME...
//   ndshm [--dir DIR] gc [--dry-run] [--json]
//
// Built on include/ndshm/inspect.hpp; see `ndshm --help` for the exit codes.
#include <ndshm/inspect.hpp>
#include <ndshm/segment.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

namespace {

// Exit codes (documented in usage()).
constexpr int exit_ok = 0;
constexpr int exit_failed = 1;
constexpr int exit_usage = 2;
constexpr int exit_not_found = 3;
constexpr int exit_refused = 4;
constexpr int exit_problem = 5;

const char* const usage_text =
    R"(usage: ndshm [--dir DIR] COMMAND [ARGS]

Lists, inspects and removes the calling user's ndshm shared-memory segments (names starting
with ndshm_) in /dev/shm, or in the directory backend given by --dir or $NDSHM_DIR. It never
maps a segment, never touches another user's, and reports unreadable or corrupt ones as such.

commands:
  ls [--json]              list segments: name, kind (array, object, channel, queue, foreign
                           npy, unfinished, corrupt, unreadable), dtype, shape, bytes, creator pid
                           and whether it is alive, age, mode, persisted
  info [--json] NAME       everything about one segment, its trailer included, and the
                           processes that have it open or mapped; checks its internals (the
                           lock, a queue's ring and queued arrays, a channel's slots and ring,
                           an object's table of contents) and exits 5 if anything is wrong
  rm NAME...               remove segments (ndshm segments of the calling user only: a name
                           starting with ndshm_ or a segment carrying ndshm's trailer)
  gc [--dry-run] [--json]  remove segments whose creator is dead (pid and start time compared,
                           so a reused pid does not count) and that were not persisted, and
                           unfinished segments whose creator died while writing them;
                           --dry-run only lists what it would remove
  help                     this text

options:
  --dir DIR     the directory backend DIR instead of /dev/shm (default: $NDSHM_DIR if set)
  --json        machine-readable output (ls, info, gc)
  --dry-run     gc: remove nothing, list what would be removed
  -h, --help    this text
  --version     print the version
  --            the arguments that follow are names, even if they start with '-'

exit status:
  0  success
  1  an operation failed (a directory could not be listed, a segment could not be removed)
  2  wrong arguments (unknown command or option, missing or invalid segment name)
  3  no such segment
  4  refused: the segment belongs to another user, or is not an ndshm segment
  5  info found a problem in the segment (like fsck: corrupt, unfinished, inconsistent
     internals, a dead holder); gc kept segments it could not judge (it says why)
)";

int usage_error(const std::string& what)
{
    std::fprintf(stderr, "ndshm: %s\nTry 'ndshm --help'.\n", what.c_str());
    return exit_usage;
}

/// Text safe to print on a terminal: printable ASCII as is, anything else as \xNN.
std::string printable(const std::string& s)
{
    std::string out;
    for (const char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        if (c >= 0x20 && c < 0x7f) {
            out += static_cast<char>(c);
        } else {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned>(c));
            out += buf;
        }
    }
    return out;
}

/// A JSON string literal. Bytes outside printable ASCII are escaped as \u00XX (names and messages
/// that are not ASCII come out as Latin-1, but always as valid JSON).
std::string json_string(const std::string& s)
{
    std::string out = "\"";
    for (const char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c >= 0x20 && c < 0x7f) {
            out += static_cast<char>(c);
        } else {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
            out += buf;
        }
    }
    return out + "\"";
}

std::string json_bool(bool b) { return b ? "true" : "false"; }

std::string octal_mode(std::uint32_t mode)
{
    char buf[16];
    std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode));
    return buf;
}

std::string human_bytes(std::uint64_t n)
{
    if (n < 1024) {
        return std::to_string(n) + " B";
    }
    static const char* const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    double v = static_cast<double>(n) / 1024.0;
    std::size_t u = 0;
    while (v >= 1024.0 && u + 1 < sizeof units / sizeof units[0]) {
        v /= 1024.0;
        ++u;
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
    return buf;
}

double age_seconds(const ndshm::segment_info& s)
{
    const std::int64_t age = ndshm::detail::now_ns() - s.created_ns();
    return age > 0 ? static_cast<double>(age) / 1e9 : 0.0;
}

std::string human_age(double seconds)
{
    const auto s = static_cast<long long>(seconds);
    if (s < 120) {
        return std::to_string(s) + "s";
    }
    if (s < 120 * 60) {
        return std::to_string(s / 60) + "m";
    }
    if (s < 48 * 3600) {
        return std::to_string(s / 3600) + "h";
    }
    return std::to_string(s / 86400) + "d";
}

std::string shape_text(const std::vector<std::size_t>& shape)
{
    std::string out = "(";
    for (std::size_t i = 0; i < shape.size(); ++i) {
        out += (i != 0 ? ", " : "") + std::to_string(shape[i]);
    }
    return out + (shape.size() == 1 ? ",)" : ")");
}

std::string time_text(std::int64_t ns)
{
    const std::time_t t = static_cast<std::time_t>(ns / 1000000000);
    struct tm tm {};
    char buf[64];
#ifdef _WIN32
    const bool local = ::localtime_s(&tm, &t) == 0;
#else
    const bool local = ::localtime_r(&t, &tm) != nullptr;
#endif
    if (!local || std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S %z", &tm) == 0) {
        return std::to_string(ns) + " ns since the epoch";
    }
    return buf;
}

std::string creator_text(const ndshm::segment_info& s)
{
    if (!s.trailer) {
        return "-";
    }
    const char* st = s.creator == ndshm::creator_status::alive  ? "alive"
                     : s.creator == ndshm::creator_status::dead ? "dead"
                                                                : "?";
    return std::to_string(s.trailer->creator_pid) + " " + st;
}

std::string segment_json(const ndshm::segment_info& s, const std::string& indent)
{
    const std::string in = indent + "  ";
    std::string j = "{\n";
    const auto field = [&](const std::string& key, const std::string& value, bool last = false) {
        j += in + json_string(key) + ": " + value + (last ? "\n" : ",\n");
    };
    field("name", json_string(s.name));
    field("path", json_string(s.path));
    field("directory", s.directory.empty() ? "null" : json_string(s.directory));
    field("kind", json_string(ndshm::kind_name(s.kind)));
    field("problem", s.problem.empty() ? "null" : json_string(s.problem));
    field("bytes", std::to_string(s.bytes));
    field("mode", json_string(octal_mode(s.mode)));
    field("uid", std::to_string(s.uid));
    field("modified_ns", std::to_string(s.modified_ns));
    char age[32];
    std::snprintf(age, sizeof age, "%.3f", age_seconds(s));
    field("age_seconds", age);
    if (s.has_header) {
        field("dtype", json_string(ndshm::dtype_name(s.dtype)));
        field("descr", json_string(ndshm::dtype_descr(s.dtype)));
        std::string shape = "[";
        for (std::size_t i = 0; i < s.shape.size(); ++i) {
            shape += (i != 0 ? ", " : "") + std::to_string(s.shape[i]);
        }
        field("shape", shape + "]");
        field("fortran_order", json_bool(s.fortran_order));
        field("data_offset", std::to_string(s.data_offset));
        field("data_bytes", std::to_string(s.data_bytes));
    } else {
        for (const char* k : {"dtype", "descr", "shape", "fortran_order", "data_offset", "data_bytes"}) {
            field(k, "null");
        }
    }
    field("persisted", s.trailer ? json_bool(s.persisted()) : "null");
    if (s.trailer) {
        const auto& t = *s.trailer;
        field("creator", "{" + json_string("pid") + ": " + std::to_string(t.creator_pid) + ", " +
                             json_string("status") + ": " + json_string(ndshm::status_name(s.creator)) + ", " +
                             json_string("detail") + ": " + json_string(s.creator_detail) + "}");
        const std::string tin = in + "  ";
        std::string tj = "{\n";
        const auto tfield = [&](const char* key, const std::string& value, bool last = false) {
            tj += tin + json_string(key) + ": " + value + (last ? "\n" : ",\n");
        };
        tfield("offset", std::to_string(t.offset));
        tfield("version", std::to_string(t.version));
        tfield("kind", std::to_string(t.kind));
        tfield("state", json_string(t.ready ? "ready" : "writing"));
        tfield("flags", std::to_string(t.flags));
        tfield("persisted", json_bool(t.persisted));
        tfield("has_lock", json_bool(t.has_lock));
        tfield("creator_uid", std::to_string(t.creator_uid));
        tfield("creator_pid", std::to_string(t.creator_pid));
        tfield("creator_start", std::to_string(t.creator_start));
        tfield("data_offset", std::to_string(t.data_offset));
        tfield("data_bytes", std::to_string(t.data_bytes));
        tfield("created_ns", std::to_string(t.created_ns), true);
        field("trailer", tj + in + "}");
    } else {
        field("creator", "null");
        field("trailer", "null");
    }
    if (s.users_known || !s.users_detail.empty()) {
        std::string users = "[";
        for (std::size_t i = 0; i < s.users.size(); ++i) {
            users += (i != 0 ? ", " : "") + std::to_string(s.users[i]);
        }
        field("users", users + "]");
        field("users_complete", json_bool(s.users_known));
        field("users_detail", s.users_known ? "null" : json_string(s.users_detail), true);
    } else {
        field("users", "null", true);
    }
    return j + indent + "}";
}

struct cli {
    std::string command;
    std::vector<std::string> args;
    std::string dir;
    bool have_dir = false;
    bool json = false;
    bool dry_run = false;
    bool help = false;
    bool version = false;
};

int cmd_ls(const cli& c, const ndshm::options& opt)
{
    const auto segments = ndshm::list_segments(opt);
    const std::string where = ndshm::detail::namespace_path(opt);
    if (c.json) {
        std::string j = "{\n  \"namespace\": " + json_string(where) +
                        ",\n  \"uid\": " + std::to_string(ndshm::detail::current_uid()) + ",\n  \"segments\": [";
        for (std::size_t i = 0; i < segments.size(); ++i) {
            j += (i != 0 ? ",\n    " : "\n    ") + segment_json(segments[i], "    ");
        }
        j += segments.empty() ? "]\n}\n" : "\n  ]\n}\n";
        std::fputs(j.c_str(), stdout);
        return exit_ok;
    }
    std::vector<std::vector<std::string>> rows;
    rows.push_back({"NAME", "KIND", "DTYPE", "SHAPE", "BYTES", "CREATOR", "AGE", "MODE", "PERSISTED", "NOTE"});
    for (const auto& s : segments) {
        rows.push_back({printable(s.name), ndshm::kind_name(s.kind), s.has_header ? ndshm::dtype_name(s.dtype) : "-",
                        s.has_header ? shape_text(s.shape) : "-", human_bytes(s.bytes), creator_text(s),
                        human_age(age_seconds(s)), octal_mode(s.mode), s.trailer ? (s.persisted() ? "yes" : "no") : "-",
                        printable(s.problem)});
    }
    std::vector<std::size_t> width(rows[0].size(), 0);
    for (const auto& r : rows) {
        for (std::size_t i = 0; i < r.size(); ++i) {
            width[i] = std::max(width[i], r[i].size());
        }
    }
    for (const auto& r : rows) {
        std::string line;
        for (std::size_t i = 0; i < r.size(); ++i) {
            line += r[i];
            if (i + 1 < r.size()) {
                line += std::string(width[i] - r[i].size() + 2, ' ');
            }
        }
        while (!line.empty() && line.back() == ' ') {
            line.pop_back();
        }
        std::printf("%s\n", line.c_str());
    }
    return exit_ok;
}

int cmd_info(const cli& c, const ndshm::options& opt)
{
    const auto s = ndshm::inspect(c.args[0], opt);
    const auto problems = ndshm::segment_problems(s);
    const int status = problems.empty() ? exit_ok : exit_problem; // like fsck: non-zero when something is wrong
    if (c.json) {
        std::string j = segment_json(s, "");
        j.pop_back(); // the closing brace: internals and problems follow
        while (!j.empty() && (j.back() == '\n' || j.back() == ' ')) {
            j.pop_back();
        }
        const auto list = [](const std::vector<std::string>& v) {
            std::string out = "[";
            for (std::size_t i = 0; i < v.size(); ++i) {
                out += (i != 0 ? ", " : "") + json_string(v[i]);
            }
            return out + "]";
        };
        j += ",\n  \"internals\": {\"checked\": " + json_bool(s.internals.checked) +
             ", \"notes\": " + list(s.internals.notes) + ", \"problems\": " + list(s.internals.problems) +
             "},\n  \"problems\": " + list(problems) + "\n}";
        std::printf("%s\n", j.c_str());
        return status;
    }
    const auto line = [](const char* key, const std::string& value) { std::printf("%-15s %s\n", key, value.c_str()); };
    line("name:", printable(s.name));
    line("path:", printable(s.path));
    line("kind:", ndshm::kind_name(s.kind));
    if (!s.problem.empty()) {
        line("problem:", printable(s.problem));
    }
    line("bytes:", std::to_string(s.bytes) + " (" + human_bytes(s.bytes) + ")");
    line("mode:", octal_mode(s.mode));
    line("owner uid:", std::to_string(s.uid));
    line("modified:", time_text(s.modified_ns));
    if (s.has_header) {
        line("dtype:", std::string(ndshm::dtype_name(s.dtype)) + " ('" + ndshm::dtype_descr(s.dtype) + "')");
        line("shape:", shape_text(s.shape));
        line("order:", s.fortran_order ? "Fortran (column-major)" : "C (row-major)");
        line("data:", std::to_string(s.data_bytes) + " bytes at offset " + std::to_string(s.data_offset));
    }
    if (s.trailer) {
        const auto& t = *s.trailer;
        line("trailer:", "version " + std::to_string(t.version) + " at offset " + std::to_string(t.offset) + ", kind " +
                             std::to_string(t.kind));
        line("state:", t.ready ? "ready (published)" : "writing (not published)");
        line("persisted:", t.persisted ? "yes" : "no");
        line("creator:", "pid " + std::to_string(t.creator_pid) + ", uid " + std::to_string(t.creator_uid) +
                             ", start tick " + std::to_string(t.creator_start) + ": " + ndshm::status_name(s.creator) +
                             " (" + s.creator_detail + ")");
        line("created:",
             time_text(static_cast<std::int64_t>(t.created_ns)) + " (age " + human_age(age_seconds(s)) + ")");
        line("trailer data:", std::to_string(t.data_bytes) + " bytes at offset " + std::to_string(t.data_offset));
        line("lock:", t.has_lock ? "ndshm's per-array lock" : "none");
    } else {
        line("trailer:", "none (" + s.creator_detail + ")");
    }
    if (s.users_known || !s.users_detail.empty()) {
        std::string users;
        for (const auto pid : s.users) {
            users += (users.empty() ? "" : ", ") + std::to_string(pid);
        }
        std::string text = users.empty() ? "no process" : "pids " + users;
        if (!s.users_known) {
            text += " (maybe more: " + printable(s.users_detail) + ")";
        }
        line("open/mapped by:", text);
    }
    for (const auto& note : s.internals.notes) {
        line("internals:", printable(note));
    }
    const std::string why = ndshm::gc_reason(s);
    line("gc:", why.empty() ? "keeps it" : "removes it: " + why);
    for (const auto& p : problems) {
        line("PROBLEM:", printable(p));
    }
    line("check:",
         problems.empty() ? std::string("ok") : std::to_string(problems.size()) + " problem(s) found (exit status 5)");
    return status;
}

int cmd_rm(const cli& c, const ndshm::options& opt)
{
    int status = exit_ok;
    const auto fail = [&](int code, const std::string& msg) {
        std::fprintf(stderr, "ndshm rm: %s\n", printable(msg).c_str());
        if (status == exit_ok) {
            status = code;
        }
    };
    for (const auto& name : c.args) {
        try {
            const auto s = ndshm::inspect(name, opt);
            if (name.rfind(ndshm::detail::name_prefix, 0) != 0 && !s.trailer) {
                fail(exit_refused, "'" + name +
                                       "' is not an ndshm segment (its name does not start with ndshm_ and it has "
                                       "no ndshm trailer); not removed");
                continue;
            }
            ndshm::unlink(name, opt);
        } catch (const ndshm::not_found& e) {
            fail(exit_not_found, e.what());
        } catch (const ndshm::permission_denied& e) {
            fail(exit_refused, e.what());
        } catch (const ndshm::error& e) {
            fail(e.code() == std::errc::invalid_argument ? exit_usage : exit_failed, e.what());
        }
    }
    return status;
}

int cmd_gc(const cli& c, const ndshm::options& opt)
{
    std::vector<ndshm::gc_entry> undecided;
    const auto entries = ndshm::gc(opt, c.dry_run, &undecided);
    int status = undecided.empty() ? exit_ok : exit_problem;
    for (const auto& e : entries) {
        if (!e.error.empty()) {
            status = exit_failed;
        }
    }
    if (c.json) {
        std::string j = "{\n  \"namespace\": " + json_string(ndshm::detail::namespace_path(opt)) +
                        ",\n  \"dry_run\": " + json_bool(c.dry_run) + ",\n  \"entries\": [";
        for (std::size_t i = 0; i < entries.size(); ++i) {
            const auto& e = entries[i];
            j += std::string(i != 0 ? "," : "") + "\n    {\n      \"name\": " + json_string(e.segment.name) +
                 ",\n      \"reason\": " + json_string(e.reason) + ",\n      \"removed\": " + json_bool(e.removed) +
                 ",\n      \"error\": " + (e.error.empty() ? "null" : json_string(e.error)) +
                 ",\n      \"segment\": " + segment_json(e.segment, "      ") + "\n    }";
        }
        j += entries.empty() ? "]" : "\n  ]";
        j += ",\n  \"undecided\": [";
        for (std::size_t i = 0; i < undecided.size(); ++i) {
            const auto& e = undecided[i];
            j += std::string(i != 0 ? "," : "") + "\n    {\n      \"name\": " + json_string(e.segment.name) +
                 ",\n      \"reason\": " + json_string(e.reason) + "\n    }";
        }
        j += undecided.empty() ? "]\n}\n" : "\n  ]\n}\n";
        std::fputs(j.c_str(), stdout);
        return status;
    }
    for (const auto& e : undecided) {
        std::fprintf(stderr, "ndshm gc: kept %s: %s\n", printable(e.segment.name).c_str(), printable(e.reason).c_str());
    }
    for (const auto& e : entries) {
        if (!e.error.empty()) {
            std::fprintf(stderr, "ndshm gc: could not remove %s: %s (%s)\n", printable(e.segment.name).c_str(),
                         printable(e.error).c_str(), printable(e.reason).c_str());
        } else {
            std::printf("%s %s: %s\n", c.dry_run ? "would remove" : "removed", printable(e.segment.name).c_str(),
                        printable(e.reason).c_str());
        }
    }
    return status;
}

int run(int argc, char** argv)
{
    cli c;
    bool names_only = false;
    std::vector<std::string> positional;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (names_only || a.empty() || a[0] != '-' || a == "-") {
            positional.push_back(a);
        } else if (a == "--") {
            names_only = true;
        } else if (a == "--dir" || a.rfind("--dir=", 0) == 0) {
            if (a == "--dir") {
                if (i + 1 >= argc) {
                    return usage_error("--dir needs a directory");
                }
                c.dir = argv[++i];
            } else {
                c.dir = a.substr(6);
            }
            if (c.dir.empty()) {
                return usage_error("--dir needs a directory");
            }
            c.have_dir = true;
        } else if (a == "--json") {
            c.json = true;
        } else if (a == "--dry-run" || a == "-n") {
            c.dry_run = true;
        } else if (a == "-h" || a == "--help") {
            c.help = true;
        } else if (a == "--version") {
            c.version = true;
        } else {
            return usage_error("unknown option '" + printable(a) + "'");
        }
    }
    if (c.help || (!positional.empty() && positional[0] == "help")) {
        std::fputs(usage_text, stdout);
        return exit_ok;
    }
    if (c.version) {
        std::printf("ndshm %s\n", NDSHM_TOOL_VERSION);
        return exit_ok;
    }
    if (positional.empty()) {
        std::fputs(usage_text, stderr);
        return exit_usage;
    }
    c.command = positional[0];
    c.args.assign(positional.begin() + 1, positional.end());

    const bool known = c.command == "ls" || c.command == "info" || c.command == "rm" || c.command == "gc";
    if (!known) {
        return usage_error("unknown command '" + printable(c.command) + "'");
    }
    if (c.json && c.command == "rm") {
        return usage_error("--json applies to ls, info and gc");
    }
    if (c.dry_run && c.command != "gc") {
        return usage_error("--dry-run applies to gc only");
    }
    if ((c.command == "ls" || c.command == "gc") && !c.args.empty()) {
        return usage_error(c.command + " takes no names (got '" + printable(c.args[0]) + "')");
    }
    if (c.command == "info" && c.args.size() != 1) {
        return usage_error(c.args.empty() ? "info needs a segment name" : "info takes one segment name");
    }
    if (c.command == "rm" && c.args.empty()) {
        return usage_error("rm needs at least one segment name");
    }
    for (const auto& name : c.args) {
        try {
            ndshm::detail::check_name(c.command, name);
        } catch (const ndshm::error& e) {
            return usage_error(printable(e.what()));
        }
    }

    ndshm::options opt;
    if (c.have_dir) {
        opt.directory = c.dir;
    }
    const std::string where = ndshm::detail::namespace_path(opt);
    struct stat st {};
    if (where != ndshm::detail::posix_shm_dir && (::stat(where.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))) {
        return usage_error("the directory backend '" + printable(where) + "' (" +
                           (c.have_dir ? "--dir" : "$NDSHM_DIR") + ") is not a directory");
    }
    try {
        if (c.command == "ls") {
            return cmd_ls(c, opt);
        }
        if (c.command == "info") {
            return cmd_info(c, opt);
        }
        if (c.command == "rm") {
            return cmd_rm(c, opt);
        }
        return cmd_gc(c, opt);
    } catch (const ndshm::not_found& e) {
        std::fprintf(stderr, "%s\n", printable(e.what()).c_str());
        return exit_not_found;
    } catch (const ndshm::permission_denied& e) {
        std::fprintf(stderr, "%s\n", printable(e.what()).c_str());
        return exit_refused;
    }
}

} // namespace

int main(int argc, char** argv)
{
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s\n", printable(e.what()).c_str());
        return exit_failed;
    }
}
