#!/usr/bin/env bash
# Image-write benchmark: the agent's writer against curl | tee >(sha256sum) | zstd -d | dd,
# both streaming the same image over loopback HTTP onto a loop block device, in the same run;
# and for the same image as a compressed qcow2 (qemu-img convert -c), the agent against what
# a qcow2 needs without a streaming reader: download to a file (hashed on the way), then
# qemu-img convert -n -t none -O raw onto the device ("baseline" in the qcow2 table).
#
#   hack/bench-image.sh [--size-mib 2048] [--runs 3] [--smoke]
#
#   --size-mib N  raw image size (default 2048)
#   --runs N      runs per tool and format, alternating (default 3); the median is reported
#   --smoke       64 MiB, 1 run
#
# Needs root (losetup), curl, zstd, qemu-img, python3, sha256sum, dd; sfdisk is used when present to
# give the image a GPT like a real OS image. AGENT_WRITE_BIN=path skips the cargo build.
# Loop devices use --direct-io=on, so every byte really reaches the backing disk for both
# tools. dd reading a pipe gets short reads, so `bs=4M` alone issues small O_DIRECT writes:
# the brief's baseline is measured as given ("baseline") and with iflag=fullblock
# ("baseline-fullblock", true 4 MiB writes); the agent is measured with O_DIRECT ("agent")
# and buffered + fdatasync ("agent-buffered"). Before each run the device's first MiB is
# zeroed (not timed) so the agent's partition check passes without --allow-partitions.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SIZE_MIB=2048
RUNS=3
while [[ $# -gt 0 ]]; do
  case "$1" in
    --size-mib) SIZE_MIB="$2"; shift 2 ;;
    --runs) RUNS="$2"; shift 2 ;;
    --smoke) SIZE_MIB=64; RUNS=1; shift ;;
    -h|--help) gw_usage 0 ;;
    *) gw_usage 2 "unknown argument: $1" ;;
  esac
done

gw_need_root losetup
for tool in curl zstd qemu-img python3 sha256sum dd losetup fallocate; do
  command -v "$tool" >/dev/null || gw_die "missing $tool"
done

TMP_BASE="${TMPDIR:-/tmp}"
# raw image + zstd and qcow2 images (<= raw each) + the baseline's qcow2 download + two
# devices of SIZE+64 MiB.
NEED_MIB=$(( 6 * SIZE_MIB + 128 ))
FREE_MIB=$(( $(df -Pk "$TMP_BASE" | awk 'NR==2 {print $4}') / 1024 ))
if (( FREE_MIB < 3 * SIZE_MIB || FREE_MIB < NEED_MIB )); then
  gw_die "not enough space in $TMP_BASE: ${FREE_MIB} MiB free, ${NEED_MIB} MiB needed (try --size-mib $(( FREE_MIB / 7 )))"
fi

WORK="$(mktemp -d "$TMP_BASE/bench-image.XXXXXX")"
LOOPS=()
SERVER_PID=""
cleanup() {
  set +e
  gw_stop_pid "$SERVER_PID"
  for dev in "${LOOPS[@]}"; do losetup -d "$dev"; done
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

if [[ -n "${AGENT_WRITE_BIN:-}" ]]; then
  BIN="$AGENT_WRITE_BIN"
else
  echo "== building groundwork-agent-write (release)"
  cargo build --release --quiet --manifest-path "$GW_ROOT/agent/Cargo.toml" --bin groundwork-agent-write
  BIN="$CARGO_TARGET_DIR/release/groundwork-agent-write"
fi
[[ -x "$BIN" ]] || gw_die "no binary at $BIN"

mkdir -p "$WORK/www"
RAW="$WORK/www/disk.raw"
ZST="$WORK/www/disk.raw.zst"
QCOW="$WORK/www/disk.qcow2"

echo "== generating a ${SIZE_MIB} MiB image (1 MiB blocks: ~40% zeros, ~30% random, ~30% text)"
python3 - "$RAW" "$SIZE_MIB" <<'EOF'
import random, sys
path, size_mib = sys.argv[1], int(sys.argv[2])
rng = random.Random(20240601)
words = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 12)))
         for _ in range(4000)]
corpus = bytearray()
while len(corpus) < 8 << 20:
    corpus += b" ".join(rng.choice(words) for _ in range(1000)) + b"\n"
corpus = bytes(corpus)
zero = bytes(1 << 20)
with open(path, "wb") as f:
    for _ in range(size_mib):
        kind = rng.random()
        if kind < 0.4:
            f.write(zero)
        elif kind < 0.7:
            f.write(rng.randbytes(1 << 20))
        else:
            at = rng.randrange(len(corpus) - (1 << 20))
            f.write(corpus[at:at + (1 << 20)])
EOF
if command -v sfdisk >/dev/null; then
  printf 'label: gpt\n,,L\n' | sfdisk -q "$RAW" >/dev/null
fi
zstd -q -T0 -3 "$RAW" -o "$ZST"
qemu-img convert -q -c -f raw -O qcow2 "$RAW" "$QCOW"
RAW_SHA="$(sha256sum "$RAW" | cut -d' ' -f1)"
ZST_SHA="$(sha256sum "$ZST" | cut -d' ' -f1)"
QCOW_SHA="$(sha256sum "$QCOW" | cut -d' ' -f1)"
ZST_MIB="$(( $(stat -c %s "$ZST") >> 20 ))"
QCOW_MIB="$(( $(stat -c %s "$QCOW") >> 20 ))"
echo "   raw ${SIZE_MIB} MiB sha256:${RAW_SHA}"
echo "   zst ${ZST_MIB} MiB sha256:${ZST_SHA}"
echo "   qcow2 (compressed) ${QCOW_MIB} MiB sha256:${QCOW_SHA}"

echo "== serving over loopback HTTP (python3 -m http.server)"
python3 -u -m http.server 0 --bind 127.0.0.1 --directory "$WORK/www" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
PORT=""
for _ in $(seq 100); do
  PORT="$(sed -n 's/.* port \([0-9]*\) .*/\1/p' "$WORK/server.log" | head -1)"
  [[ -n "$PORT" ]] && break
  sleep 0.1
done
[[ -n "$PORT" ]] || gw_die "http.server did not start: $(cat "$WORK/server.log")"
URL_RAW="http://127.0.0.1:$PORT/disk.raw"
URL_ZST="http://127.0.0.1:$PORT/disk.raw.zst"
URL_QCOW="http://127.0.0.1:$PORT/disk.qcow2"
for url in "$URL_RAW" "$URL_ZST" "$URL_QCOW"; do
  bps="$(curl -s -o /dev/null -w '%{speed_download}' "$url")"
  echo "   server alone: curl $url > /dev/null: $(python3 -c "print(f'{$bps/2**20:.0f}')") MiB/s"
done

echo "== loop devices (${SIZE_MIB}+64 MiB each, --direct-io=on)"
for name in a b; do
  fallocate -l "$(( (SIZE_MIB + 64) << 20 ))" "$WORK/$name.loop"
  LOOPS+=("$(losetup -f --show --direct-io=on "$WORK/$name.loop")")
done
DEV_BASE="${LOOPS[0]}"
DEV_AGENT="${LOOPS[1]}"
echo "   baseline -> $DEV_BASE, agent -> $DEV_AGENT"

now() { date +%s.%N; }

# run_one TOOL FORMAT -> prints wall seconds
run_one() {
  local tool="$1" format="$2" dev url sha fmt start end
  if [[ "$tool" == baseline* ]]; then dev="$DEV_BASE"; else dev="$DEV_AGENT"; fi
  case "$format" in
    raw+zstd) url="$URL_ZST"; sha="$ZST_SHA" ;;
    qcow2) url="$URL_QCOW"; sha="$QCOW_SHA" ;;
    *) url="$URL_RAW"; sha="$RAW_SHA" ;;
  esac
  dd if=/dev/zero of="$dev" bs=1M count=1 oflag=direct conv=fsync status=none
  sync
  rm -f "$WORK/sum.txt"
  start="$(now)"
  case "$tool/$format" in
    baseline/raw+zstd)
      curl -s "$url" | tee >(sha256sum >"$WORK/sum.txt") | zstd -q -d | dd of="$dev" bs=4M oflag=direct status=none ;;
    baseline/raw)
      curl -s "$url" | tee >(sha256sum >"$WORK/sum.txt") | dd of="$dev" bs=4M oflag=direct status=none ;;
    baseline-fullblock/raw+zstd)
      curl -s "$url" | tee >(sha256sum >"$WORK/sum.txt") | zstd -q -d | dd of="$dev" bs=4M iflag=fullblock oflag=direct status=none ;;
    baseline-fullblock/raw)
      curl -s "$url" | tee >(sha256sum >"$WORK/sum.txt") | dd of="$dev" bs=4M iflag=fullblock oflag=direct status=none ;;
    baseline/qcow2)
      curl -s "$url" | tee "$WORK/download.qcow2" | sha256sum >"$WORK/sum.txt"
      qemu-img convert -q -n -t none -f qcow2 -O raw "$WORK/download.qcow2" "$dev"
      rm -f "$WORK/download.qcow2" ;;
    agent/*)
      "$BIN" --url "$url" --checksum "sha256:$sha" --format "$format" --device "$dev" >"$WORK/agent.out" ;;
    agent-buffered/*)
      "$BIN" --url "$url" --checksum "sha256:$sha" --format "$format" --device "$dev" --direct-io never >"$WORK/agent.out" ;;
  esac
  if [[ "$tool" == baseline* ]]; then
    # The checksum is part of the job: wait for sha256sum to finish.
    while [[ ! -s "$WORK/sum.txt" ]]; do sleep 0.005; done
  fi
  end="$(now)"
  if [[ "$tool" == baseline* ]] && [[ "$(cut -d' ' -f1 "$WORK/sum.txt")" != "$sha" ]]; then
    gw_die "baseline checksum differs"
  fi
  python3 -c "print(f'{$end - $start:.3f}')"
}

verify() {
  local dev="$1" got
  got="$(head -c "$(( SIZE_MIB << 20 ))" "$dev" | sha256sum | cut -d' ' -f1)"
  if [[ "$got" == "$RAW_SHA" ]]; then echo ok; else echo "MISMATCH($got)"; fi
}

load() { cut -d' ' -f1-3 /proc/loadavg; }

cat /proc/loadavg >"$WORK/load.before"
RESULTS="$WORK/results.txt"
: >"$RESULTS"
for format in raw+zstd raw qcow2; do
  if [[ "$format" == qcow2 ]]; then
    tools=(baseline agent agent-buffered)
  else
    tools=(baseline baseline-fullblock agent agent-buffered)
  fi
  echo "== $format: $RUNS run(s) per tool, alternating (load $(load))"
  for run in $(seq "$RUNS"); do
    # Alternate the order so neither tool always runs on a cooler machine.
    order=("${tools[@]}")
    if (( run % 2 == 0 )); then
      for (( i = 0, j = ${#tools[@]} - 1; i < ${#tools[@]}; i++, j-- )); do order[i]="${tools[j]}"; done
    fi
    for tool in "${order[@]}"; do
      secs="$(run_one "$tool" "$format")"
      echo "$format $tool $run $secs" >>"$RESULTS"
      echo "   run $run $tool: ${secs}s (load $(load))"
    done
  done
  echo "   content: baseline device $(verify "$DEV_BASE"), agent device $(verify "$DEV_AGENT")"
  echo "$format verify $(verify "$DEV_BASE") $(verify "$DEV_AGENT")" >>"$RESULTS"
done

echo
echo "== results: ${SIZE_MIB} MiB raw image, median of $RUNS, MiB/s of raw data"
echo "   load average before: $(cut -d' ' -f1-3 "$WORK/load.before"), after: $(load) (2 cores)"
python3 - "$RESULTS" "$SIZE_MIB" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
size = int(sys.argv[2])
for fmt in ("raw+zstd", "raw", "qcow2"):
    times = {}
    for r in rows:
        if r[0] == fmt and r[1] != "verify":
            times.setdefault(r[1], []).append(float(r[3]))
    verify = next(r[2:] for r in rows if r[0] == fmt and r[1] == "verify")
    print(f"\n  {fmt}")
    print(f"  {'tool':<20}{'runs (s)':<24}{'median s':>10}{'MiB/s':>9}")
    med = {t: statistics.median(v) for t, v in times.items()}
    for tool, v in times.items():
        runs = " ".join(f"{x:.2f}" for x in v)
        print(f"  {tool:<20}{runs:<24}{med[tool]:>10.2f}{size / med[tool]:>9.1f}")
    for tool in ("agent", "agent-buffered"):
        for base in ("baseline", "baseline-fullblock"):
            if base not in med:
                continue
            ratio = med[base] / med[tool]
            print(f"  ratio {tool}/{base} throughput: {ratio:.2f} (target >= 0.90)")
    print(f"  content hash equals the raw image: baseline {verify[0]}, agent {verify[1]}")
EOF
