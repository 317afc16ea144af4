// ndshm: list, inspect and remove the calling user's shared-memory segments, the way ls, df and ipcs do.
//
//   ndshm [--dir DIR] ls [-a] [-h] [--json]
//   ndshm [--dir DIR] info [--json] NAME
//   ndshm [--dir DIR] rm NAME...
//   ndshm [--dir DIR] gc [--dry-run] [--json]
//
// NAME may be written NAME, /NAME (as shm_open takes it) or /dev/shm/NAME (DIR/NAME with --dir).
// Built on include/ndshm/inspect.hpp; arguments and help by CLI11, JSON by nlohmann/json (the records
// are in segment_json.hpp, shared with the Python module). `ndshm --help` lists the exit codes.
#include <ndshm/inspect.hpp>
#include <ndshm/segment.hpp>

#include "segment_json.hpp"

#include <CLI/CLI.hpp>

#include <sys/stat.h>
#ifdef _WIN32
#include <windows.h>
#else
#include <sys/statvfs.h>
#include <unistd.h>
#endif

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <exception>
#include <optional>
#include <string>
#include <vector>

namespace {

using ndshm::tools::age_seconds;
using ndshm::tools::json;
using ndshm::tools::octal_mode;

// Exit codes (listed in the help's footer).
constexpr int exit_ok = 0;
constexpr int exit_failed = 1;
constexpr int exit_usage = 2;
constexpr int exit_not_found = 3;
constexpr int exit_refused = 4;
constexpr int exit_problem = 5;

const char* const exit_text = R"(NAME may be given as NAME, /NAME or /dev/shm/NAME (DIR/NAME with --dir).
'ndshm COMMAND --help' describes a command's options.

Exit status:
  0  success
  1  an operation failed (a directory could not be listed, a segment could not be removed)
  2  wrong arguments (unknown command or option, missing or invalid segment name)
  3  no such segment
  4  refused: the segment belongs to another user, or is not an ndshm segment
  5  info found a problem in the segment (like fsck: corrupt, unfinished, inconsistent
     internals, a dead holder); gc kept segments it could not judge (it says why)
)";

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

/// `msg` without a leading "ndshm: " (the tool adds its own prefix, once).
std::string without_prefix(const std::string& msg) { return msg.rfind("ndshm: ", 0) == 0 ? msg.substr(7) : msg; }

/// The cause in a library error's message `ndshm: <op> '<name>': <cause>; <fix>`: the library speaks of
/// its functions and options, the tool of its own commands.
std::string cause_of(const ndshm::error& e)
{
    std::string m = without_prefix(e.what());
    const std::size_t at = m.find("': ");
    if (at != std::string::npos) {
        m = m.substr(at + 3);
    }
    const std::size_t fix = m.find("; ");
    return fix == std::string::npos ? m : m.substr(0, fix);
}

/// "1234 B" ... "1.5 GiB" (info).
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

/// A size as `ls -h` and `df -h` print it: 300, 4.0K, 12M, 1.5G (powers of 1024).
std::string short_bytes(std::uint64_t n)
{
    if (n < 1024) {
        return std::to_string(n);
    }
    static const char units[] = {'K', 'M', 'G', 'T', 'P', 'E'};
    double v = static_cast<double>(n) / 1024.0;
    std::size_t u = 0;
    while (v >= 1023.95 && u + 1 < sizeof units) {
        v /= 1024.0;
        ++u;
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, v < 9.95 ? "%.1f%c" : "%.0f%c", v, units[u]);
    return buf;
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

/// What the CONTENTS column shows: dtype and shape for arrays and .npy files; for queues, channels and
/// objects their summary (contents_summary; a kind added to inspect.hpp gets one there) rather than
/// their uint8 layout.
std::string contents_text(const ndshm::segment_info& s)
{
    if (s.contents.known) {
        return s.contents.text;
    }
    switch (s.kind) {
    case ndshm::segment_kind::array:
    case ndshm::segment_kind::foreign_npy:
        return s.has_header ? std::string(ndshm::dtype_name(s.dtype)) + " " + shape_text(s.shape) : "-";
    default:
        return "-";
    }
}

/// The ATTACHED column, like ipcs's nattch: how many processes have it open or mapped (from /proc/*/fd
/// and /proc/*/maps); "N+" if some processes could not be examined, "?" if none was seen then.
std::string attached_text(const ndshm::segment_info& s)
{
    if (s.users_known) {
        return std::to_string(s.users.size());
    }
    return s.users.empty() ? "?" : std::to_string(s.users.size()) + "+";
}

/// The command line, as CLI11 parsed it.
struct cli {
    std::string dir;
    bool have_dir = false;
    bool json = false;
    bool all = false;
    bool human = false;
    bool dry_run = false;
    std::vector<std::string> names;
};

/// The namespace the tool works in: /dev/shm, or the directory backend.
struct place {
    ndshm::options opt;
    std::string path;   ///< /dev/shm or DIR, without a trailing '/'
    std::string source; ///< where a directory backend came from: "--dir" or "$NDSHM_DIR"
};

void say(const std::string& command, const std::string& msg)
{
    std::fprintf(stderr, "ndshm %s: %s\n", command.c_str(), printable(msg).c_str());
}

int usage_error(const std::string& command, const std::string& what)
{
    std::fprintf(stderr, "ndshm%s%s: %s\nTry 'ndshm%s%s --help'.\n", command.empty() ? "" : " ", command.c_str(),
                 printable(what).c_str(), command.empty() ? "" : " ", command.c_str());
    return exit_usage;
}

/// The segment name in `arg`: NAME, /NAME (as shm_open takes it) or PLACE/NAME (/dev/shm/NAME, or
/// DIR/NAME with a directory backend). Returns an empty string and sets `why` if it is none of those.
std::string segment_arg(const std::string& arg, const place& where, std::string& why)
{
    std::string name = arg;
    if (name.size() > where.path.size() + 1 && name.compare(0, where.path.size(), where.path) == 0 &&
        name[where.path.size()] == '/') {
        name = name.substr(where.path.size() + 1);
    } else if (name.size() > 1 && name[0] == '/' && name.find('/', 1) == std::string::npos) {
        name = name.substr(1);
    }
    if (name.find('/') != std::string::npos) {
        why = "'" + arg + "' is not a segment name, nor a path in " + where.path +
              (where.source.empty() ? " (--dir DIR looks in a directory backend)" : " (" + where.source + ")");
        return {};
    }
    if (name.empty() || name.size() > 255 || name[0] == '.') {
        why = "invalid segment name '" + arg + "': " +
              (name.empty()     ? "it is empty"
               : name[0] == '.' ? "it starts with '.'"
                                : "it is longer than 255 characters");
        return {};
    }
    for (const char c : name) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                        c == '_' || c == '-';
        if (!ok) {
            why = "invalid segment name '" + arg + "': segment names use the characters [A-Za-z0-9._-]";
            return {};
        }
    }
    return name;
}

/// lstat, or stat where there are no symbolic links to tell apart (Windows).
int lstat_or_stat(const char* path, struct stat* st)
{
#ifdef _WIN32
    return ::stat(path, st);
#else
    return ::lstat(path, st);
#endif
}

/// Why the calling user may not look at `name`: its owner, as a sentence.
std::string not_yours(const std::string& name, const place& where)
{
    struct stat st {};
    const std::string owner = lstat_or_stat((where.path + "/" + name).c_str(), &st) == 0
                                  ? "uid " + std::to_string(st.st_uid)
                                  : std::string("another user");
    return "'" + name + "' belongs to " + owner + ", not to uid " + std::to_string(ndshm::detail::current_uid()) +
           ": ndshm only touches the calling user's segments (run it as that user)";
}

/// The file system's size, space used and space free to unprivileged users, as df shows them.
struct fs_space {
    bool known = false;
    std::uint64_t size = 0, used = 0, free = 0;
    std::string why; ///< why not known
};

fs_space space_of(const std::string& path)
{
    fs_space f;
#ifdef _WIN32
    ULARGE_INTEGER avail{}, total{}, total_free{};
    if (GetDiskFreeSpaceExA(path.c_str(), &avail, &total, &total_free) == 0) {
        f.why = "GetDiskFreeSpaceEx failed: error " + std::to_string(GetLastError());
        return f;
    }
    f.known = true;
    f.size = total.QuadPart;
    f.used = total.QuadPart - total_free.QuadPart;
    f.free = avail.QuadPart;
    return f;
#else
    struct statvfs v {};
    if (::statvfs(path.c_str(), &v) != 0) {
        f.why = std::string("statvfs failed: ") + std::strerror(errno);
        return f;
    }
    const std::uint64_t unit = v.f_frsize != 0 ? v.f_frsize : v.f_bsize;
    f.known = true;
    f.size = std::uint64_t(v.f_blocks) * unit;
    f.used = (std::uint64_t(v.f_blocks) - std::uint64_t(v.f_bfree)) * unit;
    f.free = std::uint64_t(v.f_bavail) * unit;
    return f;
#endif
}

/// Prints rows as columns two spaces apart, the last one unpadded.
void print_columns(const std::vector<std::vector<std::string>>& rows)
{
    std::vector<std::size_t> width(rows.empty() ? 0 : rows[0].size(), 0);
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
}

int cmd_ls(const cli& c, const place& where)
{
    ndshm::list_options what;
    what.all = c.all;
    // The text's ATTACHED column needs the processes; the JSON records stay those of Python's ndshm.list()
    // (`info --json` has them), and skip the walk over /proc.
    what.users = !c.json;
    const auto segments = ndshm::list_segments(where.opt, what);
    std::uint64_t bytes = 0, allocated = 0;
    for (const auto& s : segments) {
        bytes += s.bytes;
        allocated += s.allocated;
    }
    const fs_space fs = space_of(where.path);
    if (c.json) {
        json doc;
        doc["namespace"] = where.path;
        doc["uid"] = ndshm::detail::current_uid();
        doc["all"] = c.all;
        doc["segments"] = json::array();
        for (const auto& s : segments) {
            doc["segments"].push_back(ndshm::tools::segment_record(s));
        }
        json fs_doc = nullptr;
        if (fs.known) {
            fs_doc = {{"size", fs.size}, {"used", fs.used}, {"free", fs.free}};
        }
        doc["totals"] = {
            {"count", segments.size()}, {"bytes", bytes}, {"allocated_bytes", allocated}, {"filesystem", fs_doc}};
        std::printf("%s\n", ndshm::tools::dump(doc).c_str());
        return exit_ok;
    }
    const auto size = [&](std::uint64_t n) { return c.human ? short_bytes(n) : std::to_string(n); };
    std::vector<std::vector<std::string>> rows;
    rows.push_back({"NAME", "KIND", "CONTENTS", "SIZE", "ATTACHED", "CREATOR", "AGE", "MODE", "PERSISTED", "NOTE"});
    for (const auto& s : segments) {
        rows.push_back({printable(s.name), ndshm::kind_name(s.kind), contents_text(s), size(s.bytes), attached_text(s),
                        creator_text(s), human_age(age_seconds(s)), octal_mode(s.mode),
                        s.trailer ? (s.persisted() ? "yes" : "no") : "-", printable(s.problem)});
    }
    print_columns(rows);
    std::string total = "total " + std::to_string(segments.size()) + (c.all ? " files, " : " segments, ") +
                        size(bytes) + (c.human ? "" : " bytes");
    if (allocated != bytes) {
        total += " (" + size(allocated) + " allocated)";
    }
    total += "; " + where.path + ": ";
    total += fs.known ? size(fs.used) + " used, " + size(fs.free) + " free of " + size(fs.size)
                      : "space unknown (" + fs.why + ")";
    std::printf("%s\n", printable(total).c_str());
    return exit_ok;
}

int cmd_info(const cli& c, const place& where)
{
    std::string why;
    const std::string name = segment_arg(c.names.at(0), where, why);
    if (name.empty()) {
        return usage_error("info", why);
    }
    ndshm::segment_info s;
    try {
        s = ndshm::inspect(name, where.opt);
    } catch (const ndshm::not_found&) {
        say("info", "no such segment '" + name + "' in " + where.path + " ('ndshm ls --all' lists them)");
        return exit_not_found;
    } catch (const ndshm::permission_denied&) {
        say("info", not_yours(name, where));
        return exit_refused;
    } catch (const ndshm::error& e) {
        say("info", "cannot read '" + name + "': " + cause_of(e));
        return exit_failed;
    }
    const auto problems = ndshm::segment_problems(s);
    const int status = problems.empty() ? exit_ok : exit_problem; // like fsck: non-zero when something is wrong
    if (c.json) {
        std::printf("%s\n", ndshm::tools::info_json(s).c_str());
        return status;
    }
    const auto line = [](const char* key, const std::string& value) { std::printf("%-15s %s\n", key, value.c_str()); };
    line("name:", printable(s.name));
    line("path:", printable(s.path));
    line("kind:", ndshm::kind_name(s.kind));
    if (!s.problem.empty()) {
        line("problem:", printable(s.problem));
    }
    line("bytes:",
         std::to_string(s.bytes) + " (" + human_bytes(s.bytes) + "), " + std::to_string(s.allocated) + " allocated");
    line("mode:", octal_mode(s.mode));
    line("owner uid:", std::to_string(s.uid));
    line("modified:", time_text(s.modified_ns));
    if (s.has_header) {
        line("dtype:", std::string(ndshm::dtype_name(s.dtype)) + " ('" + ndshm::dtype_descr(s.dtype) + "')");
        line("shape:", shape_text(s.shape));
        line("order:", s.fortran_order ? "Fortran (column-major)" : "C (row-major)");
        line("data:", std::to_string(s.data_bytes) + " bytes at offset " + std::to_string(s.data_offset));
    }
    if (s.contents.known) {
        line("contents:", printable(s.contents.text));
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
    const std::string gc_why = ndshm::gc_reason(s);
    line("gc:", gc_why.empty() ? "keeps it" : "removes it: " + gc_why);
    for (const auto& p : problems) {
        line("PROBLEM:", printable(p));
    }
    line("check:",
         problems.empty() ? std::string("ok") : std::to_string(problems.size()) + " problem(s) found (exit status 5)");
    return status;
}

int cmd_rm(const cli& c, const place& where)
{
    int status = exit_ok;
    const auto fail = [&](int code, const std::string& msg) {
        say("rm", msg);
        if (status == exit_ok) {
            status = code;
        }
    };
    std::vector<std::string> names;
    for (const auto& arg : c.names) {
        std::string why;
        names.push_back(segment_arg(arg, where, why));
        if (names.back().empty()) {
            return usage_error("rm", why); // nothing removed: the command line is wrong
        }
    }
    for (const auto& name : names) {
        try {
            const auto s = ndshm::inspect(name, where.opt);
            if (name.rfind(ndshm::detail::name_prefix, 0) != 0 && !s.trailer) {
                fail(exit_refused, "'" + name +
                                       "' is not an ndshm segment (its name does not start with ndshm_ and it has "
                                       "no ndshm trailer); not removed");
                continue;
            }
            ndshm::unlink(name, where.opt);
        } catch (const ndshm::not_found&) {
            fail(exit_not_found, "cannot remove '" + name + "': no such segment in " + where.path);
        } catch (const ndshm::permission_denied&) {
            fail(exit_refused, "cannot remove " + not_yours(name, where));
        } catch (const ndshm::error& e) {
            fail(exit_failed, "cannot remove '" + name + "': " + cause_of(e));
        }
    }
    return status;
}

int cmd_gc(const cli& c, const place& where)
{
    std::vector<ndshm::gc_entry> undecided;
    const auto entries = ndshm::gc(where.opt, c.dry_run, &undecided);
    int status = undecided.empty() ? exit_ok : exit_problem;
    for (const auto& e : entries) {
        if (!e.error.empty()) {
            status = exit_failed;
        }
    }
    if (c.json) {
        json doc;
        doc["namespace"] = where.path;
        doc["dry_run"] = c.dry_run;
        doc["entries"] = json::array();
        for (const auto& e : entries) {
            doc["entries"].push_back({{"name", e.segment.name},
                                      {"reason", e.reason},
                                      {"removed", e.removed},
                                      {"error", ndshm::tools::string_or_null(e.error)},
                                      {"segment", ndshm::tools::segment_record(e.segment)}});
        }
        doc["undecided"] = json::array();
        for (const auto& e : undecided) {
            doc["undecided"].push_back({{"name", e.segment.name}, {"reason", e.reason}});
        }
        std::printf("%s\n", ndshm::tools::dump(doc).c_str());
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
    CLI::App app{"Lists, inspects and removes the calling user's ndshm shared-memory segments in /dev/shm, or in\n"
                 "the directory backend given by --dir or $NDSHM_DIR. It never maps a segment, never touches\n"
                 "another user's, and reports unreadable or corrupt ones as such.\n",
                 "ndshm"};
    app.set_help_flag("--help", "Print this help and exit"); // -h is ls's human-readable sizes, as in ls and df
    app.set_version_flag("--version", std::string("ndshm ") + NDSHM_TOOL_VERSION, "Print the version and exit");
    app.footer(exit_text);
    app.fallthrough(); // --dir is accepted after the command too
    app.add_option("--dir", c.dir, "The directory backend DIR instead of /dev/shm (default: $NDSHM_DIR if set)")
        ->option_text("DIR");

    const auto details = [](const std::string& text) { return text + "\n\n" + exit_text; };
    CLI::App* ls = app.add_subcommand("ls", "List segments, with a totals line (like ls -l, df and ipcs)");
    ls->footer(
        details("Columns: NAME, KIND (array, object, queue, channel, dict, list, foreign npy, other, unfinished,\n"
                "corrupt, unreadable), CONTENTS (dtype and shape of an array; what a queue, channel or\n"
                "object holds), SIZE in bytes, ATTACHED (processes that have it open or mapped, from\n"
                "/proc; N+ or ? where some could not be read), CREATOR (pid, and whether it runs), AGE,\n"
                "MODE, PERSISTED, NOTE (what is wrong). The totals line gives the space the listed\n"
                "segments take and the space used and free on the file system."));
    ls->add_flag("-a,--all", c.all,
                 "List every file of the calling user, not only names starting with ndshm_ (.npy files NumPy "
                 "made, segments named by the program, other programs' files)");
    ls->add_flag("-h,--human-readable", c.human, "Print sizes like 4.0K, 12M, 1.5G (powers of 1024)");
    ls->add_flag("--json", c.json, "Machine-readable output");

    CLI::App* info = app.add_subcommand("info", "Describe one segment and check it (exit 5 if anything is wrong)");
    info->footer(
        details("Everything about one segment, its trailer included, and the processes that have it\n"
                "open or mapped; checks its internals (the lock, a queue's ring and queued arrays, a\n"
                "channel's slots and ring, an object's table of contents, a dict's or list's table), like fsck."));
    info->add_flag("--json", c.json, "Machine-readable output");
    info->add_option("NAME", c.names, "The segment")->required()->expected(1);

    CLI::App* rm = app.add_subcommand("rm", "Remove segments");
    rm->footer(details("Removes the calling user's ndshm segments only: a name starting with ndshm_ or a\n"
                       "segment carrying ndshm's trailer. Processes that have one mapped keep their mapping."));
    rm->add_option("NAME", c.names, "The segments")->required();

    CLI::App* gc = app.add_subcommand("gc", "Remove segments left behind by processes that died");
    gc->footer(details("Removes segments whose creator is dead (pid and start time compared, so a reused pid\n"
                       "does not count) and that were not persisted, and unfinished segments whose creator\n"
                       "died while writing them."));
    gc->add_flag("-n,--dry-run", c.dry_run, "Remove nothing; list what would be removed");
    gc->add_flag("--json", c.json, "Machine-readable output");

    CLI::App* help = app.add_subcommand("help", "Print this help and exit");

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        if (e.get_exit_code() == 0) { // --help or --version
            return app.exit(e);
        }
        std::string command;
        for (const auto* sub : app.get_subcommands()) {
            command = sub->get_name();
        }
        std::string what = e.what();
        const auto extras = app.remaining();
        if (dynamic_cast<const CLI::ExtrasError*>(&e) != nullptr && command.empty() && !extras.empty()) {
            what = extras[0] == "-h" ? "-h means human-readable sizes (ndshm ls -h); --help prints the help"
                   : extras[0].rfind('-', 0) == 0 ? "unknown option '" + extras[0] + "'"
                                                  : "unknown command '" + extras[0] +
                                                        "' (commands: ls, info, rm, "
                                                        "gc, help)";
        }
        return usage_error(command, what);
    }
    if (help->parsed()) {
        std::fputs(app.help().c_str(), stdout);
        return exit_ok;
    }
    const auto chosen = app.get_subcommands();
    if (chosen.empty()) {
        std::fputs(app.help().c_str(), stderr);
        return exit_usage;
    }
    const std::string command = chosen[0]->get_name();

    place where;
    c.have_dir = app.count("--dir") != 0;
    if (c.have_dir) {
        if (c.dir.empty()) {
            return usage_error(command, "--dir needs a directory");
        }
        where.opt.directory = c.dir;
    }
    where.path = ndshm::detail::namespace_path(where.opt);
    while (where.path.size() > 1 && where.path.back() == '/') {
        where.path.pop_back();
    }
    if (where.path != ndshm::detail::posix_shm_dir) {
        where.source = c.have_dir ? "--dir" : "$NDSHM_DIR";
        struct stat st {};
        if (::stat(where.path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
            return usage_error(command,
                               "the directory backend '" + where.path + "' (" + where.source + ") is not a directory");
        }
    }
    try {
        if (ls->parsed()) {
            return cmd_ls(c, where);
        }
        if (info->parsed()) {
            return cmd_info(c, where);
        }
        if (rm->parsed()) {
            return cmd_rm(c, where);
        }
        return cmd_gc(c, where);
    } catch (const ndshm::not_found& e) {
        say(command, cause_of(e));
        return exit_not_found;
    } catch (const ndshm::permission_denied& e) {
        say(command, without_prefix(e.what()));
        return exit_refused;
    } catch (const ndshm::error& e) {
        say(command, without_prefix(e.what()));
        return exit_failed;
    }
}

} // namespace

int main(int argc, char** argv)
{
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "ndshm: %s\n", printable(without_prefix(e.what())).c_str());
        return exit_failed;
    }
}
