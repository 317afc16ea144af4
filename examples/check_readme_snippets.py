"""Checks that every C++ and Python snippet of the README and of docs/ is tested code from an example.

    check_readme_snippets.py README.md [DOC.md...] EXAMPLE.cpp... EXAMPLE.py...

Each Markdown file (the arguments ending in .md) is checked; the README must quote at least one
example.

Every ```cpp (or ```c++) fenced block of the README passes if its non-blank lines, each stripped of
leading and trailing whitespace, appear in the same order and contiguously among the non-blank,
stripped lines of the `// [readme]` ... `// [readme-end]` part of some C++ example file; every
```python block likewise in the `# [readme]` ... `# [readme-end]` part of some Python example file.
Exits 1 and says which block fails, and where it stops matching, otherwise. Any python3 will do.
"""

import os
import sys

# language -> (fences that open a README block, the comment that starts a marker in an example)
LANGUAGES = {
    'cpp': (('```cpp', '```c++', '```C++'), '//'),
    'python': (('```python', '```py'), '#'),
}


def language_of_example(path):
    return 'python' if os.path.splitext(path)[1] == '.py' else 'cpp'


def readme_blocks(path):
    """[(line number of the opening fence, language, [non-blank stripped lines])] for every C++ and Python
    block."""
    blocks = []
    current = None
    with open(path, encoding='utf-8') as f:
        for number, line in enumerate(f, 1):
            text = line.strip()
            if current is None:
                for language, (fences, _) in LANGUAGES.items():
                    if text in fences:
                        current = (number, language, [])
            elif text.startswith('```'):
                blocks.append(current)
                current = None
            elif text:
                current[2].append(text)
    if current is not None:
        raise ValueError(f"{path}:{current[0]}: the ```{current[1]} block is never closed")
    return blocks


def example_regions(path):
    """[(line number of the marker, [non-blank stripped lines])] for every [readme] part of an example."""
    comment = LANGUAGES[language_of_example(path)][1]
    begin, end = comment + ' [readme]', comment + ' [readme-end]'
    regions = []
    current = None
    with open(path, encoding='utf-8') as f:
        for number, line in enumerate(f, 1):
            text = line.strip()
            if text == begin:
                if current is not None:
                    raise ValueError(f"{path}:{number}: {begin} inside another {begin} part")
                current = (number, [])
            elif text == end:
                if current is None:
                    raise ValueError(f"{path}:{number}: {end} without {begin}")
                regions.append(current)
                current = None
            elif current is not None and text:
                current[1].append(text)
    if current is not None:
        raise ValueError(f"{path}:{current[0]}: {begin} without {end}")
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
    pages = [a for a in argv[1:] if a.endswith('.md')]
    examples = [a for a in argv[1:] if not a.endswith('.md')]
    if not pages or not examples:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    readme = pages[0]
    try:
        blocks = [(f"{page}:{line}", language, block) for page in pages
                  for line, language, block in readme_blocks(page)]
        readme_only = [b for b in blocks if b[0].startswith(readme + ':')]
    except FileNotFoundError:
        print(f"readme_snippets: {readme} does not exist yet; write the README, quoting the "
              f"{BEGIN} ... {END} parts of the examples in ```cpp blocks", file=sys.stderr)
        return 1
    try:
        regions = [(path, number, lines, language_of_example(path))
                   for path in examples for number, lines in example_regions(path)]
    except (OSError, ValueError) as e:
        print(f"readme_snippets: {e}", file=sys.stderr)
        return 1
    if not any(language == 'cpp' for _, language, _ in readme_only):
        print(f"readme_snippets: {readme} has no ```cpp block; the README should quote the examples",
              file=sys.stderr)
        return 1

    failures = 0
    for line, language, block in blocks:
        if not block:
            continue
        candidates = [r for r in regions if r[3] == language]
        if any(longest_match(block, lines) == len(block) for _, _, lines, _ in candidates):
            continue
        failures += 1
        # Point at the region that matches best and the first line that differs.
        best = max(candidates, key=lambda r: longest_match(block, r[2]), default=None)
        matched = longest_match(block, best[2]) if best else 0
        where = f" (best match: {best[0]}:{best[1]}, {matched} of {len(block)} lines)" if best else ""
        comment = LANGUAGES[language][1]
        print(f"readme_snippets: {line}: this ```{language} block is not a contiguous part of any "
              f"example's {comment} [readme] ... {comment} [readme-end] section{where}; first line not matched:"
              f"\n    {block[matched]}", file=sys.stderr)
    if failures:
        print(f"readme_snippets: {failures} of {len(blocks)} C++ and Python blocks do not come from the examples; "
              f"copy them from examples/ (or change the example and the README together)", file=sys.stderr)
        return 1
    counts = {language: sum(1 for _, lang, _ in blocks if lang == language) for language in LANGUAGES}
    print(f"readme_snippets: all {counts['cpp']} C++ and {counts['python']} Python blocks of {len(pages)} pages are "
          f"tested example code ({len(regions)} [readme] parts in {len(examples)} examples)")
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
