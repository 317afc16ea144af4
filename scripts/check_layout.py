#!/usr/bin/env python3
"""Checks the layout rules of include/ndshm (docs/design.md, "Layout of the repository").

- One header per concept, none past MAX_LINES lines: a longer one splits by concept.
- detail/ headers include only detail/ headers and the vocabulary headers (error, dtype, options):
  never a public header above them, so the layers stay one-way.
- Public headers hold the public API: at most MAX_DETAIL_LINES lines of `namespace detail` each
  (small glue); implementation lives in detail/. The vocabulary headers are exempt: detail/ builds on
  them, so their own helpers cannot move below them.

Usage: check_layout.py [include_dir]. Prints every violation and exits 1 if there is one.
"""
import pathlib
import re
import sys

MAX_LINES = 650
MAX_DETAIL_LINES = 40
VOCABULARY = {"error.hpp", "dtype.hpp", "options.hpp"}

INCLUDE_RE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')
DETAIL_OPEN_RE = re.compile(r"^namespace (ndshm::)?detail\s*\{")
DETAIL_CLOSE_RE = re.compile(r"^\}\s*//\s*namespace (ndshm::)?detail")


def detail_lines(lines):
    """Lines inside top-level `namespace detail { ... } // namespace detail` blocks."""
    total, start = 0, None
    for i, line in enumerate(lines):
        if start is None and DETAIL_OPEN_RE.match(line):
            start = i
        elif start is not None and DETAIL_CLOSE_RE.match(line):
            total += i - start + 1
            start = None
    return total


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).parent.parent / "include")
    base = root / "ndshm"
    problems = []
    headers = sorted(base.rglob("*.hpp"))
    if not headers:
        problems.append(f"{base}: no headers found")
    for path in headers:
        rel = path.relative_to(root)
        lines = path.read_text(encoding="utf-8").splitlines()
        if len(lines) > MAX_LINES:
            problems.append(f"{rel}: {len(lines)} lines, more than {MAX_LINES}: split it by concept")
        in_detail = path.parent.name == "detail"
        for n, line in enumerate(lines, 1):
            m = INCLUDE_RE.match(line)
            if not m:
                continue
            target = (path.parent / m.group(1)).resolve()
            if in_detail and target.parent != path.parent and target.name not in VOCABULARY:
                problems.append(f"{rel}:{n}: a detail/ header includes the public header {m.group(1)}")
        if not in_detail and path.name not in VOCABULARY:
            d = detail_lines(lines)
            if d > MAX_DETAIL_LINES:
                problems.append(f"{rel}: {d} lines of namespace detail, more than {MAX_DETAIL_LINES}: "
                                "move the implementation to detail/")
    design = root.parent / "docs" / "design.md"
    design_text = design.read_text(encoding="utf-8") if design.exists() else None
    for path in headers:
        rel = path.relative_to(base).as_posix()
        text = path.read_text(encoding="utf-8")
        if "/// @file" not in text.split("\n#", 1)[0]:
            problems.append(f"ndshm/{rel}: no /// @file comment before its first directive")
        if design_text is not None and f"`{rel}`" not in design_text:
            problems.append(f"ndshm/{rel}: not named in docs/design.md's layout of the repository")
    for p in problems:
        print(p)
    print(f"check_layout: {len(headers)} headers, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
