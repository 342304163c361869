#!/usr/bin/env bash
# The protocol benchmarks of issue 2, in ONE run on ONE machine: the five
# operations in Rust (criterion, release build, one thread), the same five with
# the official Node SDK and the official Python SDK, and OpenSSL's raw
# single-core RSA-2048 sign and verify rates. Prints ops/s, the ratios and the
# targets as Markdown (the "Protocol" section of BENCHMARKS.md is its output).
# Every implementation uses the same keys and payloads: the worked examples of
# protocol.md (crates/alipay/tests/conformance/worked-examples).
#
#   bash bench/protocol.sh                 # 3 rounds, 2 s per measurement, pinned to CPU 1
#   BENCH_ROUNDS=5 BENCH_SECONDS=3 BENCH_CPU=0 bash bench/protocol.sh
#   BENCH_CPU= bash bench/protocol.sh      # do not pin
#   BENCH_OUT=DIR bash bench/protocol.sh   # keep the raw results in DIR
#
# Every figure is operations per CPU-second of one core: every measurement is
# pinned to the same CPU (so Node's JIT and GC threads cannot borrow another
# core) and counts CPU time, as `openssl speed` does by default, so other work
# on a shared machine does not skew the ratios. On a quiet machine CPU time and
# wall-clock time agree.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
seconds="${BENCH_SECONDS:-2}"
rounds="${BENCH_ROUNDS:-3}"
cpu="${BENCH_CPU-1}"

die() {
  echo "bench/protocol.sh: $*" >&2
  exit 1
}

python="$root/interop/.venv/bin/python"
[ -f "$root/interop/node_modules/alipay-sdk/package.json" ] ||
  die "the official Node SDK is missing (interop/node_modules); run scripts/setup-interop"
[ -x "$python" ] && "$python" -c 'import alipay.aop.api' 2>/dev/null ||
  die "the official Python SDK is missing (interop/.venv); run scripts/setup-interop"
for tool in cargo node openssl; do
  command -v "$tool" >/dev/null || die "$tool is required"
done
[[ "$seconds" =~ ^[0-9]+$ ]] && [ "$seconds" -ge 1 ] || die "BENCH_SECONDS must be a whole number of seconds"
[[ "$rounds" =~ ^[0-9]+$ ]] && [ "$rounds" -ge 1 ] || die "BENCH_ROUNDS must be a whole number"

pin=()
if [ -n "$cpu" ]; then
  command -v taskset >/dev/null || die "taskset is required to pin to CPU $cpu (or set BENCH_CPU= to not pin)"
  pin=(taskset -c "$cpu")
fi
run_pinned() { ${pin[@]+"${pin[@]}"} "$@"; }

if [ -n "${BENCH_OUT:-}" ]; then
  out="$BENCH_OUT" # keep the raw results (bench/report.py DIR prints them again)
  mkdir -p "$out"
else
  out="$(mktemp -d)"
  trap 'rm -rf "$out"' EXIT
fi
cd "$root"
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
if awk '{ exit !($1 > 0.5) }' /proc/loadavg; then
  echo "bench: note: load average ${load_before%% *}; figures count CPU time, but caches are shared" >&2
fi

echo "bench: building the Rust benchmarks (release)…" >&2
cargo bench -p jianlian-alipay --bench protocol --no-run >"$out/build.log" 2>&1 ||
  { cat "$out/build.log" >&2; die "cargo bench --no-run failed"; }

# Rounds interleave the implementations, so a burst of other work on a shared
# machine hits one round of one of them; report.py keeps each one's best round.
for round in $(seq 1 "$rounds"); do
  dir="$out/round$round"
  mkdir -p "$dir"

  echo "bench: round $round/$rounds: openssl speed -seconds $seconds rsa2048…" >&2
  run_pinned openssl speed -seconds "$seconds" rsa2048 2>/dev/null |
    awk '/^rsa 2048 bits/ { print "sign", $(NF-1); print "verify", $NF }' >"$dir/openssl.txt"
  [ "$(wc -l <"$dir/openssl.txt")" -eq 2 ] || die "could not read the rsa2048 line of openssl speed"

  echo "bench: round $round/$rounds: Rust (criterion)…" >&2
  # Criterion keeps every sample in $CRITERION_HOME/<bench>/new/sample.json.
  CRITERION_HOME="$dir/criterion" JIANLIAN_BENCH_CLOCK=cpu run_pinned \
    cargo bench -p jianlian-alipay --bench protocol -- \
    --output-format bencher --warm-up-time 1 --measurement-time "$seconds" >"$dir/rust.log" 2>&1 ||
    { cat "$dir/rust.log" >&2; die "cargo bench failed"; }

  echo "bench: round $round/$rounds: Node SDK…" >&2
  run_pinned node bench/node_sdk.mjs "$seconds" >"$dir/node.txt"

  echo "bench: round $round/$rounds: Python SDK…" >&2
  run_pinned "$python" bench/python_sdk.py "$seconds" >"$dir/python.txt"
done

{
  echo "cpu $(lscpu | sed -n 's/^Model name: *//p' | head -1)"
  echo "cores $(nproc)"
  echo "pinned ${cpu:-no}"
  echo "seconds $seconds"
  echo "rounds $rounds"
  echo "rustc $(rustc --version)"
  echo "node $(node --version)"
  echo "python $("$python" --version 2>&1)"
  echo "openssl $(openssl version)"
  echo "date $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "load_before $load_before"
  echo "load $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$out/machine.txt"

"$python" bench/report.py "$out"
