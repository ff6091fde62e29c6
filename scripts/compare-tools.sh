#!/usr/bin/env bash
# The table of docs/performance.md: weft beside the tools a user would otherwise pick, on
# the same programs, in one run on one machine. Each program is timed natively (static
# glibc, as weft runs it), under valgrind --tool=none and Helgrind (the same binary),
# under ThreadSanitizer (a -fsanitize=thread build: TSan only runs dynamically linked),
# and under `weft run` and `weft record` (round-robin, the default), and `weft record
# --sharing all` (every access a scheduling point and recorded, as weft did before trace
# format 5). Each time is the best of REPEAT runs (default 3); "x native" divides by the
# native time.
#
#   scripts/compare-tools.sh               # the three programs of the table
#   REPEAT=5 scripts/compare-tools.sh      # more runs each
#
# Needs gcc (with libtsan) and valgrind; builds weft in release mode when target/release
# has none. Prints a Markdown table on stdout; nothing is written to the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
repeat=${REPEAT:-3}
programs=(private_sort lock_heavy bench_pthreads)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

command -v valgrind >/dev/null || { echo "compare-tools: valgrind is missing" >&2; exit 2; }
[ -x target/release/weft ] || cargo build --release --quiet --bin weft
weft=target/release/weft

# The best wall time of `repeat` runs of the command, in seconds (its output discarded).
best() {
    local b=""
    for _ in $(seq "$repeat"); do
        local s e t
        s=$(date +%s.%N)
        "$@" >/dev/null 2>&1 || true
        e=$(date +%s.%N)
        t=$(awk -v a="$s" -v b="$e" 'BEGIN { print b - a }')
        if [ -z "$b" ] || awk -v t="$t" -v b="$b" 'BEGIN { exit !(t < b) }'; then b=$t; fi
    done
    printf '%.3f' "$b"
}

echo "| program | native | valgrind --tool=none | TSan | Helgrind | weft run | weft record | trace | weft record --sharing all | trace |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for p in "${programs[@]}"; do
    src=tests/guests/linux/$p.c
    gcc -O2 -g -static -pthread -fno-pie -no-pie "$src" -o "$work/$p"
    gcc -O2 -g -pthread -fsanitize=thread "$src" -o "$work/$p-tsan"
    native=$(best "$work/$p")
    cells=()
    for t in \
        "$(best valgrind --tool=none "$work/$p")" \
        "$(best "$work/$p-tsan")" \
        "$(best valgrind --tool=helgrind "$work/$p")" \
        "$(best "$weft" run "$work/$p")" \
        "$(best "$weft" record "$work/$p" -o "$work/$p.weft")" \
        "$(best "$weft" record "$work/$p" --sharing all -o "$work/$p-all.weft")"; do
        cells+=("$t s ($(awk -v t="$t" -v n="$native" 'BEGIN { printf "%.0f", t / n }')x)")
    done
    size=$(stat -c %s "$work/$p.weft")
    all=$(stat -c %s "$work/$p-all.weft")
    echo "| $p | $native s | ${cells[0]} | ${cells[1]} | ${cells[2]} | ${cells[3]} | ${cells[4]} | $((size / 1024)) KiB | ${cells[5]} | $((all / 1024)) KiB |"
done
echo
echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); $(date -u +%Y-%m-%d)."
