#!/usr/bin/env bash
# SCTBench under `weft explore`: build every buggy benchmark of a SCTBench checkout as a
# static executable (the compiler flags and program arguments of the repository's own
# build and run scripts, plus -static), run `weft explore` on each and print a table.
#
#   scripts/sctbench.sh SCTBENCH_DIR [options] [-- extra weft explore options]
#
# Options:
#   --out DIR         where builds, traces and results go (default: ./sctbench-out)
#   --weft PATH       the weft binary (default: target/release/weft of this checkout)
#   --schedules N     schedules per benchmark (default 10000)
#   --time S          seconds per benchmark (default 150)
#   --only REGEX      only benchmarks whose name matches (grep -E)
#   --correct         the correct variants (_ok, _unsat) instead: each must pass
#   --build-only      build, do not run
#   --with-heavy      also build ferret and radbench bug2 and bug6 (NSPR, SpiderMonkey,
#                     gsl, ImageMagick from the checkout's own sources: several minutes)
#
# Fetches nothing: get SCTBench yourself (docs/explore.md says how). Needs gcc, g++, make,
# m4 and jq. Never writes into the SCTBench checkout: sources are copied under --out.
# Results: OUT/results.tsv (one line per benchmark) and the table on standard output.
set -uo pipefail

die() { echo "sctbench.sh: $*" >&2; exit 2; }

[ $# -ge 1 ] || die "usage: scripts/sctbench.sh SCTBENCH_DIR [--out DIR] [--weft PATH] [--schedules N] [--time S] [--only REGEX] [--correct] [--build-only] [--with-heavy] [-- explore options]"
SCT=$(cd "$1" 2>/dev/null && pwd) || die "$1: not a directory"
shift
[ -f "$SCT/benchmarks/buggy.txt" ] || die "$SCT: not a SCTBench checkout (no benchmarks/buggy.txt)"
HERE=$(cd "$(dirname "$0")/.." && pwd)
OUT=$PWD/sctbench-out
WEFT=$HERE/target/release/weft
SCHEDULES=10000
TIME=150
ONLY=.
CORRECT=0
BUILD_ONLY=0
HEAVY=0
EXTRA=()
while [ $# -gt 0 ]; do
    case "$1" in
        --out) OUT=$(mkdir -p "$2" && cd "$2" && pwd) || die "--out $2: cannot create"; shift 2 ;;
        --weft) WEFT=$2; shift 2 ;;
        --schedules) SCHEDULES=$2; shift 2 ;;
        --time) TIME=$2; shift 2 ;;
        --only) ONLY=$2; shift 2 ;;
        --correct) CORRECT=1; shift ;;
        --build-only) BUILD_ONLY=1; shift ;;
        --with-heavy) HEAVY=1; shift ;;
        --) shift; EXTRA=("$@"); break ;;
        *) die "unknown option $1" ;;
    esac
done
for tool in gcc g++ make m4 jq; do
    command -v $tool >/dev/null || die "needs $tool (apt-get install $tool)"
done
[ "$BUILD_ONLY" = 1 ] || [ -x "$WEFT" ] || die "$WEFT: no weft binary (cargo build --release, or --weft PATH)"

B=$SCT/benchmarks
BUILD=$OUT/build
mkdir -p "$BUILD" "$OUT/bin" "$OUT/runs"
LOG=$OUT/build.log
: > "$LOG"
NUMTHREADS=2   # run_many.py's default --numthreads

CFLAGS_C=(-g -O0 -static -pthread)
CFLAGS_CXX=(-std=c++0x -g -O0 -static -pthread)

# name -> "rundir|args" (rundir holds the files the program reads)
declare -A RUN
# name -> extra explore options: ctrace-test's main returns 6 when all is well
# (TRC_RETURN(..., i) with i = 6), so that status is its normal end, not a failure.
declare -A OPTS=([ctrace-test]="--exit-ok 6")

built() { echo "  built $1" >>"$LOG"; }
fail_build() { echo "  FAILED to build $1 (see $LOG)" >&2; }

# A benchmark whose first source line says `args: ...` (SCTBench's convention).
args_of() {
    local line
    line=$(head -1 "$1")
    case "$line" in
        *args:*) line=${line#*args:}; line=${line//\{NUMTHREADS\}/$NUMTHREADS}
                 echo "${line//\{OUTFILE\}/output.txt}" | sed 's/^ *//;s/ *$//' ;;
        *) echo "" ;;
    esac
}

single_c() { # suite file name
    local src=$B/$1/$2 name=$3 dir=$BUILD/$3
    mkdir -p "$dir"
    if gcc -o "$OUT/bin/$name" "$src" "${CFLAGS_C[@]}" >>"$LOG" 2>&1; then
        built "$name"; RUN[$name]="$dir|$(args_of "$src")"
    else fail_build "$name"; fi
}

single_cxx() { # suite file name
    local src=$B/$1/$2 name=$3 dir=$BUILD/$3
    mkdir -p "$dir"
    if g++ -o "$OUT/bin/$name" "$src" "${CFLAGS_CXX[@]}" >>"$LOG" 2>&1; then
        built "$name"; RUN[$name]="$dir|$(args_of "$src")"
    else fail_build "$name"; fi
}

# A splash2 program: its makefile, with -g and -static added.
splash() { # name subdir binary args
    local name=$1 dir=$BUILD/$1
    rm -rf "$dir"; mkdir -p "$dir"
    cp -r "$B/splash2/null_macros" "$BUILD/" 2>/dev/null
    cp -r "$B/splash2/$2/." "$dir/"
    local depth macros
    depth=$(echo "$2" | tr -cd / | wc -c)
    macros=$BUILD/null_macros/c.m4.null
    if (cd "$dir" && make MACROS="$macros" CFLAGS="-O0 -g -w" LDFLAGS="-lm -pthread -static" >>"$LOG" 2>&1); then
        cp "$dir/$3" "$OUT/bin/$name"; built "$name"; RUN[$name]="$dir|$4"
    else fail_build "$name"; fi
    : "$depth"
}

build_buggy() {
    local f
    for f in InterlockedWorkStealQueue InterlockedWorkStealQueueWithState StateWorkStealQueue WorkStealQueue; do
        single_cxx chess "$f.cpp" "$f"
    done
    while read -r suite test _; do
        [ "$suite" = concurrent-software-benchmarks ] && single_c "$suite" "$test.c" "$test"
    done < <(grep -v '^#' "$B/buggy.txt")
    single_c inspect_examples ctrace-test.c ctrace-test
    single_c inspect_benchmarks qsort_mt.c qsort_mt
    # safestack: its build.sh (g++ -std=c++0x -g -O0).
    mkdir -p "$BUILD/safestack"
    if g++ -o "$OUT/bin/safestack" "$B/safestack/SafeStack.cpp" "${CFLAGS_CXX[@]}" >>"$LOG" 2>&1; then
        built safestack; RUN[safestack]="$BUILD/safestack|"
    else fail_build safestack; fi
    # conc-bugs: their Makefiles' flags.
    local d=$BUILD/stringbuffer-jdk1.4
    rm -rf "$d"; cp -r "$B/conc-bugs/stringbuffer-jdk1.4" "$d"
    if g++ -g -static -pthread -o "$OUT/bin/stringbuffer-jdk1.4" "$d/main.cpp" "$d/stringbuffer.cpp" >>"$LOG" 2>&1; then
        built stringbuffer-jdk1.4; RUN[stringbuffer-jdk1.4]="$d|"
    else fail_build stringbuffer-jdk1.4; fi
    d=$BUILD/pbzip2-0.9.4
    rm -rf "$d"; cp -r "$B/conc-bugs/pbzip2-0.9.4" "$d"
    if (cd "$d/bzip2-1.0.6" && make libbz2.a >>"$LOG" 2>&1) &&
        g++ -I "$d/bzip2-1.0.6" -L "$d/bzip2-1.0.6" -O0 -g -D_LARGEFILE64_SOURCE -D_FILE_OFFSET_BITS=64 \
            -static -pthread -o "$OUT/bin/pbzip2-0.9.4" "$d/pbzip2-0.9.4/pbzip2.cpp" -lbz2 >>"$LOG" 2>&1; then
        mkdir -p "$d/run"; cp "$d/test.tar" "$d/run/"
        built pbzip2-0.9.4; RUN[pbzip2-0.9.4]="$d/run|-k -f -p$NUMTHREADS -1 -b1 test.tar"
    else fail_build pbzip2-0.9.4; fi
    d=$BUILD/aget-bug2
    rm -rf "$d"; cp -r "$B/conc-bugs/aget-bug2" "$d"
    if (cd "$d/aget-devel" && make clean >/dev/null 2>&1; make CFLAGS="-g -Wall" LDFLAGS="-pthread -static" >>"$LOG" 2>&1); then
        mkdir -p "$d/run"; cp "$d/aget-devel/0" "$d/aget-devel/17573" "$d/run/"
        cp "$d/aget-devel/aget" "$OUT/bin/aget-bug2"
        built aget-bug2; RUN[aget-bug2]="$d/run|-l dl.txt http://www.gnu.org/licenses/gpl.txt"
    else fail_build aget-bug2; fi
    # PARSEC streamcluster (gcc-pthreads: -O0 -fpermissive -DENABLE_THREADS), test input.
    for f in streamcluster streamcluster2 streamcluster3; do
        d=$BUILD/$f; mkdir -p "$d"
        local s=$B/parsec-2.0/pkgs/kernels/$f/src
        if g++ -O0 -g -fpermissive -DENABLE_THREADS -static -pthread -o "$OUT/bin/$f" \
            "$s/streamcluster.cpp" "$s/parsec_barrier.cpp" >>"$LOG" 2>&1; then
            built "$f"; RUN[$f]="$d|2 5 1 10 10 5 none output.txt $NUMTHREADS"
        else fail_build "$f"; fi
    done
    splash barnes apps/barnes BARNES ""
    splash fft kernels/fft FFT "-p2 -m2 -n4 -l4"
    splash lu kernels/lu/non_contiguous_blocks LU "-p2 -n2 -b1"
    [ "$HEAVY" = 1 ] && build_heavy && build_ferret
}

# radbench bug2 and bug6 (NSPR and SpiderMonkey from the checkout's tarballs) and ferret.
build_heavy() {
    local d=$BUILD/radbench-bug6
    rm -rf "$d"; mkdir -p "$d"
    tar xzf "$B/radbench/Benchmarks/bug6/src/nspr-4.8.tar.gz" -C "$d"
    if (cd "$d" && mkdir -p target && cd target &&
        ../nspr-4.8/mozilla/nsprpub/configure --enable-64bit --disable-shared >>"$LOG" 2>&1 && make >>"$LOG" 2>&1) &&
        gcc -g -fno-inline -pthread -static -UNDEBUG -DDEBUG=1 -DXP_UNIX=1 -D_GNU_SOURCE=1 -DLINUX=1 \
            -D_REENTRANT=1 -DFORCE_PR_LOG -D_PR_PTHREADS -UHAVE_CVAR_BUILT_ON_SEM \
            -I"$d/target/dist/include/nspr" -I"$d/nspr-4.8/mozilla/nsprpub/pr/include" \
            -I"$d/nspr-4.8/mozilla/nsprpub/pr/include/private" \
            -o "$OUT/bin/radbench-bug6" "$B/radbench/Benchmarks/bug6/src/rwlock-test.c" \
            -L"$d/target/dist/lib" -lplc4 -lnspr4 >>"$LOG" 2>&1; then
        built radbench-bug6; RUN[radbench-bug6]="$d|"
    else fail_build radbench-bug6; fi
    d=$BUILD/radbench-bug2
    rm -rf "$d"; mkdir -p "$d"
    tar xzf "$B/radbench/Benchmarks/bug2/src/nspr-4.6.7.tar.gz" -C "$d"
    tar xzf "$B/radbench/Benchmarks/bug2/src/js-1.7.0.tar.gz" -C "$d"
    if (cd "$d" && mkdir -p target && cd target &&
        ../nspr-4.6.7/mozilla/nsprpub/configure --enable-64bit --disable-shared >>"$LOG" 2>&1 &&
        make >>"$LOG" 2>&1) &&
        (cd "$d/js/src" && PATH="$d/target/dist/bin:$PATH" \
            make -f Makefile.ref JS_THREADSAFE=1 XCFLAGS="-I$d/target/dist/include/nspr -fpermissive" \
            XLDFLAGS="-L$d/target/dist/lib -lplds4 -lplc4 -lnspr4" >>"$LOG" 2>&1) &&
        obj=$(echo "$d"/js/src/*.OBJ) &&
        g++ -g -static -pthread -fpermissive -o "$OUT/bin/radbench-bug2" \
            "$B/radbench/Benchmarks/bug2/src/test-ctxt.cpp" -I"$d/js/src" -I"$obj" \
            -I"$d/target/dist/include/nspr" "$obj/libjs.a" \
            -L"$d/target/dist/lib" -lplds4 -lplc4 -lnspr4 -lm >>"$LOG" 2>&1; then
        built radbench-bug2; RUN[radbench-bug2]="$d|"
    else fail_build radbench-bug2; fi
}

# PARSEC ferret: its gsl and ImageMagick from the checkout (static, ImageMagick with the
# JPEG coder only, from the system's libjpeg: libjpeg-dev), the pthreads version, the
# test input. HUGE (an old SVID name) is HUGE_VAL for today's glibc.
build_ferret() {
    local d=$BUILD/ferret P=$B/parsec-2.0/pkgs
    rm -rf "$d"; mkdir -p "$d/inst"
    cp -r "$P/libs/gsl/src" "$d/gsl"
    cp -r "$P/libs/imagick/src" "$d/imagick"
    cp -r "$P/apps/ferret/src" "$d/ferret"
    if (cd "$d/gsl" && ./configure --disable-shared --prefix="$d/inst" >>"$LOG" 2>&1 &&
            make >>"$LOG" 2>&1 && make install >>"$LOG" 2>&1) &&
        (cd "$d/imagick" && ./configure --disable-shared --prefix="$d/inst" --without-x \
            --without-perl --without-magick-plus-plus --disable-openmp --without-threads \
            --with-jpeg --without-png --without-tiff --without-freetype --without-fontconfig \
            --without-lcms --without-bzlib --without-zlib --without-xml --without-modules \
            >>"$LOG" 2>&1 && make >>"$LOG" 2>&1 && make install >>"$LOG" 2>&1) &&
        (cd "$d/ferret" && CFLAGS="-O0 -g -DHUGE=HUGE_VAL -I$d/inst/include" \
            LDFLAGS="-static -pthread -L$d/inst/lib" make version=pthreads \
            IMAGE_LDLIBS="$("$d/inst/bin/Magick-config" --libs) -ljpeg -lm" >>"$LOG" 2>&1); then
        mkdir -p "$d/run"; tar xf "$P/apps/ferret/inputs/input_test.tar" -C "$d/run"
        cp "$d/ferret/parsec/bin/ferret-parallel" "$OUT/bin/ferret"
        built ferret; RUN[ferret]="$d/run|corel lsh queries 1 1 $NUMTHREADS output.txt"
    else fail_build ferret; fi
}

build_correct() {
    local f n
    for f in "$B"/concurrent-software-benchmarks/*_ok.c "$B"/concurrent-software-benchmarks/*_unsat.c; do
        n=$(basename "$f" .c)
        single_c concurrent-software-benchmarks "$n.c" "$n"
    done
}

echo "building into $OUT (log: $LOG)" >&2
if [ "$CORRECT" = 1 ]; then build_correct; else build_buggy; fi
[ "$BUILD_ONLY" = 1 ] && { echo "built ${#RUN[@]} benchmarks into $OUT/bin" >&2; exit 0; }

RESULTS=$OUT/results.tsv
printf 'benchmark\tfound\tschedules\tseconds\tpreemptions\tstrategy\tverdict\n' > "$RESULTS"
for name in $(printf '%s\n' "${!RUN[@]}" | sort | grep -E -- "$ONLY"); do
    IFS='|' read -r dir args <<< "${RUN[$name]}"
    out=$OUT/runs/$name
    rm -rf "$out"; mkdir -p "$out"
    # shellcheck disable=SC2086
    (cd "$dir" && nice "$WEFT" explore "$OUT/bin/$name" --jobs 1 --schedules "$SCHEDULES" \
        --time "$TIME" --json --out "$out" ${OPTS[$name]:-} "${EXTRA[@]}" -- $args) > "$out/summary.json" 2> "$out/stderr.txt"
    if ! jq -e . "$out/summary.json" >/dev/null 2>&1; then
        printf '%s\terror\t-\t-\t-\t-\t%s\n' "$name" "$(tail -1 "$out/stderr.txt")" >> "$RESULTS"
        continue
    fi
    jq -r --arg n "$name" '
        (.failures | map(select(.found)) | first) as $f
        | [$n,
           (if $f then "yes" else "no" end),
           (if $f then ($f.index + 1 | tostring) else (.tried | tostring) end),
           (.seconds * 10 | round / 10 | tostring),
           (if $f and $f.preemptions != null then ($f.preemptions | tostring) else "-" end),
           (if $f then $f.strategy else .strategy end),
           (if $f then $f.verdict else ((.failures | map(.verdict) | first) // "pass") end)]
        | @tsv' "$out/summary.json" >> "$RESULTS"
done
column -t -s $'\t' "$RESULTS"
