/// @file segment_json.hpp
/// The JSON records of segments, shared by the `ndshm` tool (`ls`, `info` and `gc` with `--json`) and the
/// Python module (`ndshm.list()`, `ndshm.info()`, `ndshm.gc()`), so that both always give the same fields.
/// Built with nlohmann/json, so quoting and escaping are right by construction: strings are UTF-8 with
/// everything outside ASCII escaped as \uXXXX; bytes that are not valid UTF-8 (a file name from
/// `ls --all`, say) come out as U+FFFD.
#ifndef NDSHM_TOOLS_SEGMENT_JSON_HPP
#define NDSHM_TOOLS_SEGMENT_JSON_HPP

#include <ndshm/inspect.hpp>

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace ndshm::tools {

/// A JSON document whose keys keep the order they were added in (records read top to bottom).
using json = nlohmann::ordered_json;

/// `j` as text: indented by 2 (or on one line for a negative `indent`), ASCII only.
inline std::string dump(const json& j, int indent = 2)
{
    return j.dump(indent, ' ', true, nlohmann::json::error_handler_t::replace);
}

/// A JSON string literal.
inline std::string json_string(const std::string& s) { return dump(json(s), -1); }

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

/// `text`, or null if it is empty.
inline json string_or_null(const std::string& text) { return text.empty() ? json(nullptr) : json(text); }

/// What a queue, channel, object, dict or list holds (segment_info::contents): {"summary": text, count: n, ...},
/// or null for the kinds without a summary.
inline json contents_record(const ndshm::contents_summary& c)
{
    if (!c.known) {
        return nullptr;
    }
    json j;
    j["summary"] = c.text;
    for (const auto& count : c.counts) {
        j[count.first] = count.second;
    }
    return j;
}

/// One segment as a JSON object: the record of `ndshm ls --json`, `ndshm info --json` and each entry of
/// `ndshm gc --json`, and of Python's ndshm.list(), ndshm.info() and ndshm.gc().
inline json segment_record(const ndshm::segment_info& s)
{
    json j;
    j["name"] = s.name;
    j["path"] = s.path;
    j["directory"] = string_or_null(s.directory);
    j["kind"] = ndshm::kind_name(s.kind);
    j["problem"] = string_or_null(s.problem);
    j["bytes"] = s.bytes;
    j["allocated_bytes"] = s.allocated;
    j["mode"] = octal_mode(s.mode);
    j["uid"] = s.uid;
    j["modified_ns"] = s.modified_ns;
    j["age_seconds"] = std::round(age_seconds(s) * 1000.0) / 1000.0;
    if (s.has_header) {
        j["dtype"] = ndshm::dtype_name(s.dtype);
        j["descr"] = ndshm::dtype_descr(s.dtype);
        j["shape"] = s.shape;
        j["fortran_order"] = s.fortran_order;
        j["data_offset"] = s.data_offset;
        j["data_bytes"] = s.data_bytes;
    } else {
        for (const char* k : {"dtype", "descr", "shape", "fortran_order", "data_offset", "data_bytes"}) {
            j[k] = nullptr;
        }
    }
    j["contents"] = contents_record(s.contents);
    j["persisted"] = s.trailer ? json(s.persisted()) : json(nullptr);
    if (s.trailer) {
        const auto& t = *s.trailer;
        j["creator"] = {
            {"pid", t.creator_pid}, {"status", ndshm::status_name(s.creator)}, {"detail", s.creator_detail}};
        j["trailer"] = {{"offset", t.offset},
                        {"version", t.version},
                        {"kind", t.kind},
                        {"state", t.ready ? "ready" : "writing"},
                        {"flags", t.flags},
                        {"persisted", t.persisted},
                        {"has_lock", t.has_lock},
                        {"creator_uid", t.creator_uid},
                        {"creator_pid", t.creator_pid},
                        {"creator_start", t.creator_start},
                        {"data_offset", t.data_offset},
                        {"data_bytes", t.data_bytes},
                        {"created_ns", t.created_ns}};
    } else {
        j["creator"] = nullptr;
        j["trailer"] = nullptr;
    }
    if (s.users_known || !s.users_detail.empty()) {
        j["users"] = s.users;
        j["users_complete"] = s.users_known;
        j["users_detail"] = s.users_known ? json(nullptr) : json(s.users_detail);
    } else {
        j["users"] = nullptr;
    }
    return j;
}

/// One segment as `ndshm info --json` prints it and Python's ndshm.info() returns it: its record, then
/// "internals" (whether its internals were checked, and the notes and problems found there) and
/// "problems" (ndshm::segment_problems: everything found wrong with it).
inline json info_record(const ndshm::segment_info& s)
{
    json j = segment_record(s);
    j["internals"] = {
        {"checked", s.internals.checked}, {"notes", s.internals.notes}, {"problems", s.internals.problems}};
    j["problems"] = ndshm::segment_problems(s);
    return j;
}

/// segment_record() as text; `indent` prefixes every line after the first.
inline std::string segment_json(const ndshm::segment_info& s, const std::string& indent)
{
    const std::string text = dump(segment_record(s));
    std::string out;
    for (const char c : text) {
        out += c;
        if (c == '\n') {
            out += indent;
        }
    }
    return out;
}

/// info_record() as text.
inline std::string info_json(const ndshm::segment_info& s) { return dump(info_record(s)); }

} // namespace ndshm::tools

#endif
