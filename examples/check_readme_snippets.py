"""Checks that every C++ snippet of the README is compiled code from an example.

    check_readme_snippets.py README.md EXAMPLE.cpp...

Every ```cpp (or ```c++) fenced block of the README passes if its non-blank lines, each stripped of
leading and trailing whitespace, appear in the same order and contiguously among the non-blank,
stripped lines of the `// [readme]` ... `// [readme-end]` part of some example file. Exits 1 and
says which block fails, and where it stops matching, otherwise. Any python3 will do.
"""

import sys

BEGIN = '// [readme]'
END = '// [readme-end]'
FENCES = ('```cpp', '```c++', '```C++')


def readme_blocks(path):
    """[(line number of the opening fence, [non-blank stripped lines])] for every C++ block."""
    blocks = []
    current = None
    with open(path, encoding='utf-8') as f:
        for number, line in enumerate(f, 1):
            text = line.strip()
            if current is None:
                if text in FENCES:
                    current = (number, [])
            elif text.startswith('```'):
                blocks.append(current)
                current = None
            elif text:
                current[1].append(text)
    if current is not None:
        raise ValueError(f"{path}:{current[0]}: the ```cpp block is never closed")
    return blocks


def example_regions(path):
    """[(line number of the marker, [non-blank stripped lines])] for every [readme] part of an example."""
    regions = []
    current = None
    with open(path, encoding='utf-8') as f:
        for number, line in enumerate(f, 1):
            text = line.strip()
            if text == BEGIN:
                if current is not None:
                    raise ValueError(f"{path}:{number}: {BEGIN} inside another {BEGIN} part")
                current = (number, [])
            elif text == END:
                if current is None:
                    raise ValueError(f"{path}:{number}: {END} without {BEGIN}")
                regions.append(current)
                current = None
            elif current is not None and text:
                current[1].append(text)
    if current is not None:
        raise ValueError(f"{path}:{current[0]}: {BEGIN} without {END}")
    return regions


def longest_match(block, lines):
    """Length of the longest prefix of `block` found contiguously in `lines`."""
    best = 0
    for start in range(len(lines)):
        n = 0
        while n < len(block) and start + n < len(lines) and lines[start + n] == block[n]:
            n += 1
        best = max(best, n)
    return best


def main(argv):
    if len(argv) < 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    readme, examples = argv[1], argv[2:]
    try:
        blocks = readme_blocks(readme)
    except FileNotFoundError:
        print(f"readme_snippets: {readme} does not exist yet; write the README, quoting the "
              f"{BEGIN} ... {END} parts of the examples in ```cpp blocks", file=sys.stderr)
        return 1
    try:
        regions = [(path, number, lines) for path in examples for number, lines in example_regions(path)]
    except (OSError, ValueError) as e:
        print(f"readme_snippets: {e}", file=sys.stderr)
        return 1
    if not blocks:
        print(f"readme_snippets: {readme} has no ```cpp block; the README should quote the examples",
              file=sys.stderr)
        return 1

    failures = 0
    for line, block in blocks:
        if not block:
            continue
        if any(longest_match(block, lines) == len(block) for _, _, lines in regions):
            continue
        failures += 1
        # Point at the region that matches best and the first line that differs.
        best = max(regions, key=lambda r: longest_match(block, r[2]), default=None)
        matched = longest_match(block, best[2]) if best else 0
        where = f" (best match: {best[0]}:{best[1]}, {matched} of {len(block)} lines)" if best else ""
        print(f"readme_snippets: {readme}:{line}: this ```cpp block is not a contiguous part of any example's "
              f"{BEGIN} ... {END} section{where}; first line not matched:\n    {block[matched]}",
              file=sys.stderr)
    if failures:
        print(f"readme_snippets: {failures} of {len(blocks)} C++ blocks do not come from the examples; copy them "
              f"from examples/ (or change the example and the README together)", file=sys.stderr)
        return 1
    print(f"readme_snippets: all {len(blocks)} C++ blocks of {readme} are compiled example code "
          f"({len(regions)} [readme] parts in {len(examples)} examples)")
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
