#!/usr/bin/env bash
# Fuzzes the DHCP answer (boot/fuzz, target dhcp_answer) for a bounded time:
#
#   hack/fuzz.sh [SECONDS]        # default 60
#
# Seeds from the committed corpus boot/fuzz/corpus/dhcp_answer (read only: inputs found during
# the run go to a temporary directory, removed afterwards). Prints the runs and the coverage
# reached; exits non-zero on a crash (panic), a timeout or running out of memory, printing the
# input in hex (the file is also left in boot/fuzz/artifacts/dhcp_answer/).
#
# Toolchain: nightly with AddressSanitizer when a nightly toolchain is installed, else stable
# with `--sanitizer none` (cargo-fuzz then passes only stable -C flags). Override with
# FUZZ_TOOLCHAIN=stable|nightly and FUZZ_SANITIZER=none|address. Debug assertions and overflow
# checks are on in every crate (cargo-fuzz's default, like `cargo test`); FUZZ_BUILD_ARGS=-O
# fuzzes the release semantics instead (none of them). Builds into
# $FUZZ_TARGET_DIR (default: $CARGO_TARGET_DIR/fuzz; hack/lib.sh's default target is under the
# cache), apart from the workspace builds. Installs cargo-fuzz when missing.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$GW_ROOT"
root="$GW_ROOT"

duration="${1:-60}"
[[ "$duration" =~ ^[1-9][0-9]*$ ]] || gw_usage

export CARGO_TERM_COLOR=never
cargo_fuzz_version=0.13.2
target=dhcp_answer
fuzz_dir="$root/boot/fuzz"
seeds="$fuzz_dir/corpus/$target"
target_dir="${FUZZ_TARGET_DIR:-$CARGO_TARGET_DIR/fuzz}"

# Installed under the cache (CI keeps ~/.cache, not ~/.cargo), so warm runs do not rebuild it.
tools="$GW_CACHE/cargo-tools"
export PATH="$tools/bin:$PATH"
if ! cargo fuzz --version 2>/dev/null | grep -qF "$cargo_fuzz_version"; then
  echo "installing cargo-fuzz $cargo_fuzz_version into $tools"
  cargo install cargo-fuzz --version "=$cargo_fuzz_version" --locked --root "$tools"
fi

toolchain="${FUZZ_TOOLCHAIN:-}"
if [ -z "$toolchain" ]; then
  if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    toolchain=nightly
  else
    toolchain=stable
  fi
fi
if [ "$toolchain" = nightly ]; then
  sanitizer="${FUZZ_SANITIZER:-address}"
else
  # -Zsanitizer is nightly only; without a sanitizer cargo-fuzz needs no unstable flag.
  sanitizer=none
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir "$work/corpus"

fuzz=(cargo "+$toolchain" fuzz)
read -ra extra <<<"${FUZZ_BUILD_ARGS:-}"
opts=(--fuzz-dir "$fuzz_dir" --target-dir "$target_dir" --sanitizer "$sanitizer" "${extra[@]}")
echo "=== fuzz $target: $duration s, toolchain $toolchain, sanitizer $sanitizer ${extra[*]}"
echo "=== build ($target_dir)"
(cd "$root/boot" && "${fuzz[@]}" build "${opts[@]}" "$target")

echo "=== run"
rc=0
# The first corpus directory is the writable one.
(cd "$root/boot" && "${fuzz[@]}" run "${opts[@]}" "$target" "$work/corpus" "$seeds" -- \
  -max_total_time="$duration" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1) \
  >"$work/log" 2>&1 || rc=$?

grep -E '^INFO: seed corpus|^INFO: *[0-9]+ files found' "$work/log" || true
grep -E '^#[0-9]+' "$work/log" | grep 'cov:' | tail -n 1 || true
grep -E '^Done [0-9]+ runs|^stat::' "$work/log" || true
echo "new corpus entries (not kept): $(find "$work/corpus" -type f | wc -l)"

if [ "$rc" -ne 0 ]; then
  echo "=== FAILED (exit $rc): last lines of the libFuzzer log"
  tail -n 60 "$work/log"
  echo "=== failure"
  grep -E -A1 "panicked at|^==[0-9]+== *ERROR|^SUMMARY:" "$work/log" || true
  found=0
  while read -r unit; do
    [ -f "$unit" ] || unit="$root/boot/$unit"
    [ -f "$unit" ] || continue
    found=1
    echo "=== input $unit ($(wc -c <"$unit") bytes), hex:"
    od -An -tx1 -v "$unit"
  done < <(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$work/log" | grep -v '/slow-unit-' || true)
  [ "$found" -eq 1 ] || echo "(no input file named in the log)"
  echo "reproduce: cd boot && cargo +$toolchain fuzz run --sanitizer $sanitizer ${extra[*]} --target-dir $target_dir $target <file>"
  exit "$rc"
fi
echo "=== fuzz $target: no crash in $duration s"
