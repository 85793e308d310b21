#!/usr/bin/env bash
# Fuzzes tagllm's parsers with cargo-fuzz (libFuzzer), one target after another:
#   scripts/fuzz.sh [SECONDS] [TARGET...]      default: 60 seconds each, every target
# Targets (fuzz/README.md): gguf, tag_file, inputs, tokenizer (needs the model: scripts/setup.sh).
# Runs on the stable toolchain (no sanitizer: AddressSanitizer needs nightly; safe Rust panics on
# every memory error anyway, and debug assertions + overflow checks are on). Each run starts
# from a scratch copy of fuzz/corpus/TARGET, so new corpus entries never touch the tree. Prints
# the executions and exec/s per target; fails on the first crash, leaving the input under
# fuzz/artifacts/TARGET/ (turn it into a test in tests/fuzz_regressions.rs).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
[[ $seconds =~ ^[1-9][0-9]*$ ]] || { echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]" >&2; exit 2; }
shift $(( $# > 0 ? 1 : 0 ))
all=(gguf tag_file inputs tokenizer)
targets=("${@:-${all[@]}}")
for t in "${targets[@]}"; do
  [[ " ${all[*]} " == *" $t "* ]] || { echo "unknown fuzz target '$t' (have: ${all[*]})" >&2; exit 2; }
done

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "-- installing cargo-fuzz 0.13.2 (crates.io)"
  cargo install cargo-fuzz@0.13.2 --locked
fi
# libfuzzer-sys compiles libFuzzer (C++).
if ! command -v c++ >/dev/null && ! command -v g++ >/dev/null && ! command -v clang++ >/dev/null; then
  echo "-- apt: installing g++ (libFuzzer is C++)"
  sudo_=(); [ "$(id -u)" = 0 ] || sudo_=(sudo)
  "${sudo_[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_[@]}" apt-get install -y -qq g++ >/dev/null
fi
# -a: debug assertions and integer-overflow checks, so arithmetic bugs surface as crashes.
fuzz_flags=(--sanitizer none -a)
echo "-- building the fuzz targets"
cargo fuzz build "${fuzz_flags[@]}"

# Errors from candle capture a backtrace when RUST_BACKTRACE is set, which costs more than the
# parse itself; a crash still prints its panic message (reproduce with RUST_BACKTRACE=1).
export RUST_BACKTRACE=0
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for t in "${targets[@]}"; do
  mkdir -p "$scratch/$t" "fuzz/artifacts/$t"
  cp -R "fuzz/corpus/$t/." "$scratch/$t/"
  log="$scratch/$t.log"
  echo "-- fuzzing $t for ${seconds}s"
  if ! cargo fuzz run "${fuzz_flags[@]}" "$t" "$scratch/$t" -- \
      -max_total_time="$seconds" -timeout=60 -print_final_stats=1 >"$log" 2>&1; then
    grep -v '^Output of `std::fmt::Debug`' "$log" | tail -n 40 | cut -c1-300
    echo "FUZZ FAILURE in $t: the input is in fuzz/artifacts/$t/; reproduce with" >&2
    echo "  cargo fuzz run ${fuzz_flags[*]} $t fuzz/artifacts/$t/<file>" >&2
    exit 1
  fi
  final_stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -n 1; }
  runs=$(final_stat number_of_executed_units)
  rate=$(final_stat average_exec_per_sec)
  added=$(final_stat new_units_added)
  rss=$(final_stat peak_rss_mb)
  [[ -n $runs ]] || runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -n 1)
  echo "$t: ${runs:-?} executions in ${seconds}s (${rate:-?} exec/s), ${added:-?} new corpus units, peak RSS ${rss:-?} MB, no crash"
done
