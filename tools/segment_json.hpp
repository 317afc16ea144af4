/// @file segment_json.hpp
/// The JSON records of segments, shared by the `ndshm` tool (`ls`, `info` and `gc` with `--json`) and the
/// Python module (`ndshm.list()`, `ndshm.info()`, `ndshm.gc()`), so that both always give the same fields.
#ifndef NDSHM_TOOLS_SEGMENT_JSON_HPP
#define NDSHM_TOOLS_SEGMENT_JSON_HPP

#include <ndshm/inspect.hpp>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace ndshm::tools {

/// A JSON string literal. Bytes outside printable ASCII are escaped as \u00XX (names and messages
/// that are not ASCII come out as Latin-1, but always as valid JSON).
inline std::string json_string(const std::string& s)
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

/// `true` or `false`.
inline std::string json_bool(bool b) { return b ? "true" : "false"; }

/// Permission bits as four octal digits: "0600".
inline std::string octal_mode(std::uint32_t mode)
{
    char buf[16];
    std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode));
    return buf;
}

/// Seconds since the segment's creation (its trailer), else since its last modification.
inline double age_seconds(const ndshm::segment_info& s)
{
    const std::int64_t age = ndshm::detail::now_ns() - s.created_ns();
    return age > 0 ? static_cast<double>(age) / 1e9 : 0.0;
}

/// One segment as a JSON object: the record of `ndshm ls --json`, `ndshm info --json` and each entry of
/// `ndshm gc --json`, and of Python's ndshm.list(), ndshm.info() and ndshm.gc(). `indent` prefixes every
/// line after the first.
inline std::string segment_json(const ndshm::segment_info& s, const std::string& indent)
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
    field("summary", s.summary.empty() ? "null" : json_string(s.summary));
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

/// One segment as `ndshm info --json` prints it and Python's ndshm.info() returns it: its record, then
/// "internals" (whether its internals were checked, and the notes and problems found there) and
/// "problems" (ndshm::segment_problems: everything found wrong with it).
inline std::string info_json(const ndshm::segment_info& s)
{
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
         "},\n  \"problems\": " + list(ndshm::segment_problems(s)) + "\n}";
    return j;
}

} // namespace ndshm::tools

#endif
