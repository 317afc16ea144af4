#!/bin/sh
# Instructions the compiler proper (cc1plus) executes for each hello-world here, counted by
# valgrind's callgrind: unlike seconds, the count does not move with the machine's load.
# Usage: sh benchmarks/compile/instructions.sh [compiler flags...]   (default: -O2 -std=c++17)
# Needs valgrind (Debian package `valgrind`); runs about a minute per file. "separate": compiled with
# NDSHM_SEPARATE_COMPILATION, whose function bodies src/ndshm.cpp compiles once per program.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
include="$here/../../include"
[ $# -gt 0 ] || set -- -O2 -std=c++17
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
count() { # tag, then g++ arguments: prints the cc1plus instruction count
    tag=$1
    shift
    valgrind --tool=callgrind --trace-children=yes --callgrind-out-file="$out/$tag.%p" \
        g++ "$@" >/dev/null 2>&1
    for f in "$out/$tag".*; do
        if grep -q '^cmd:.*cc1plus' "$f"; then
            sed -n 's/^summary: //p' "$f"
        fi
    done
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
printf '#include <xtensor/xarray.hpp>\n' >"$out/xarray_header.cpp"
printf '#include <ndshm/ndshm.hpp>\n' >"$out/ndshm_header.cpp"
xarray=$(count xarray "$@" -I"$include" -c "$here/hello_xarray.cpp" -o "$out/x.o")
ndshm=$(count ndshm "$@" -I"$include" -c "$here/hello_ndshm.cpp" -o "$out/n.o")
separate=$(count separate "$@" -DNDSHM_SEPARATE_COMPILATION -I"$include" -c "$here/hello_ndshm.cpp" -o "$out/s.o")
library=$(count library "$@" -DNDSHM_SEPARATE_COMPILATION -I"$include" -c "$here/../../src/ndshm.cpp" -o "$out/l.o")
xarray_parse=$(count xparse "$@" -I"$include" -fsyntax-only "$out/xarray_header.cpp")
ndshm_parse=$(count nparse "$@" -I"$include" -fsyntax-only "$out/ndshm_header.cpp")
separate_parse=$(count sparse "$@" -DNDSHM_SEPARATE_COMPILATION -I"$include" -fsyntax-only "$out/ndshm_header.cpp")
echo "flags: $*"
echo "hello_xarray.cpp                 $xarray instructions"
echo "hello_ndshm.cpp                  $ndshm instructions ($(ratio "$ndshm" "$xarray")x)"
echo "hello_ndshm.cpp, separate        $separate instructions ($(ratio "$separate" "$xarray")x; NDSHM_SEPARATE_COMPILATION)"
echo "src/ndshm.cpp (once per program) $library instructions"
echo "<xtensor/xarray.hpp>, parse only $xarray_parse instructions"
echo "<ndshm/ndshm.hpp>, parse only    $ndshm_parse instructions ($(ratio "$ndshm_parse" "$xarray_parse")x)"
echo "<ndshm/ndshm.hpp>, separate      $separate_parse instructions ($(ratio "$separate_parse" "$xarray_parse")x)"
