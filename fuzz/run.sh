#!/usr/bin/env bash
# Fuzzes parse → validate → render for a bounded time (default 60 s).
# Usage: fuzz/run.sh [SECONDS]. Installs cargo-fuzz if missing; RUSTC_BOOTSTRAP lets the
# stable toolchain build with the sanitizer flags cargo-fuzz passes.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-60}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
mkdir -p corpus/validate
RUSTC_BOOTSTRAP=1 cargo fuzz run validate corpus/validate seeds -- -max_total_time="$seconds" -max_len=70000
