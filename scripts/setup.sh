#!/usr/bin/env bash
# Installs what building weft needs on a fresh Debian machine and is missing here:
# cmake and libclang (unicorn-engine's build), gcc and g++ (the example and test guests), gdb (tests),
# chromium (the report tests open the HTML report in a headless browser), glibc's static
# libraries (the Linux example programs) and musl-gcc (a test builds a musl program).
# Idempotent: does nothing when everything is present.
set -euo pipefail
missing=()
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
command -v gcc >/dev/null 2>&1 || missing+=(gcc)
command -v g++ >/dev/null 2>&1 || missing+=(g++)
command -v make >/dev/null 2>&1 || missing+=(make)
command -v gdb >/dev/null 2>&1 || missing+=(gdb)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v musl-gcc >/dev/null 2>&1 || missing+=(musl-tools)
[ -e /usr/lib/x86_64-linux-gnu/libpthread.a ] || missing+=(libc6-dev)
# bindgen needs libclang.so; Debian's libclang-dev provides it.
if ! dpkg -s libclang-dev >/dev/null 2>&1; then
  missing+=(libclang-dev)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "weft setup: installing ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v cargo >/dev/null 2>&1 || { echo "weft setup: cargo not found; install Rust (rustup) first" >&2; exit 2; }
