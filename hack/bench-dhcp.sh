#!/usr/bin/env bash
# DHCP benchmark (not a test): our DHCP server (the controller's boot services) against dnsmasq
# (no-ping) and Kea (kea-dhcp4, memfile) in the same run, loaded by perfdhcp at rising rates.
#
#   hack/bench-dhcp.sh [--rates 200,1000,5000] [--seconds 10] [--smoke] [--controlplane DIR]
#                      [--dnsmasq-leasefile] [--keep-logs]
#
#   --smoke           one low rate (100/s for 3 s): quick, for CI; still prints the tables.
#   --controlplane D  reuse a running control plane (hack/controlplane.sh up D) instead of
#                     starting and stopping one.
#   --dnsmasq-leasefile  let dnsmasq write its lease file (its default deployment). Without it
#                     dnsmasq runs with --leasefile-ro, in memory like ours and Kea (memfile,
#                     persist false): dnsmasq rewrites the whole file on every lease change, so
#                     with the file it falls apart near 1000 leases/s (a baseline that weak would
#                     flatter us).
#   --keep-logs       keep the work directory (server logs, perfdhcp outputs) and print its path.
#
# Topology (needs root): netns gwbench-srv-PID holds bridge br0 (10.70.0.2/16), the server
# under test binds br0; netns gwbench-cli-PID holds veth-cli (10.70.0.3/16) plugged into br0,
# perfdhcp runs there. perfdhcp acts as a relay (giaddr = 10.70.0.3), so servers answer it by
# unicast to port 67. Every server is restarted before every rate (fresh, empty pools); rates
# are the outer loop so the three servers of one rate run close together in time.
#
# Per run: leases/s = ACKs received / seconds of sending (perfdhcp's own "Rate" also divides by
# the -W wait); drops = DISCOVER->OFFER and REQUEST->ACK drops as perfdhcp counts them (-W 1 s lets
# replies still in flight at the end arrive); avg delays in ms. Clients: rate x seconds MACs
# (perfdhcp picks them at random, so some MACs repeat and renew their own lease).
# Target: at the highest rate dnsmasq sustains with 0 % drops, ours completes at least
# dnsmasq's leases/s (within 1 %) with 0 % drops. Exit status is non-zero only when something
# fails to run, never for a missed target.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$GW_ROOT"

rates="200,1000,5000"; seconds=10; smoke=0; cp_dir=""; keep=0; dnsmasq_leasefile=0
while (($#)); do
  case "$1" in
    --rates) rates="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --smoke) smoke=1; shift ;;
    --controlplane) cp_dir="$2"; shift 2 ;;
    --keep-logs) keep=1; shift ;;
    --dnsmasq-leasefile) dnsmasq_leasefile=1; shift ;;
    -h|--help) gw_usage 0 ;;
    *) gw_usage 2 "unknown argument $1" ;;
  esac
done
((smoke)) && { rates=100; seconds=3; }
IFS=, read -r -a rate_list <<<"$rates"
for r in "${rate_list[@]}"; do [[ "$r" =~ ^[1-9][0-9]*$ ]] || gw_usage 2 "bad rate: $r"; done
[[ "$seconds" =~ ^[1-9][0-9]*$ ]] || gw_usage 2 "bad --seconds: $seconds"
gw_need_root "network namespaces, port 67"

SRV="gwbench-srv-$$"; CLI="gwbench-cli-$$"
SUBNET_PREFIX=16; SRV_ADDR=10.70.0.2; CLI_ADDR=10.70.0.3
RANGE_START=10.70.1.0; RANGE_END=10.70.255.254
work="$(mktemp -d /tmp/groundwork-bench-dhcp.XXXXXX)"
own_cp=0; k8s_ns=""; server_pid=""; perf_pid=""; failed=1

# --- cleanup ----------------------------------------------------------------------------------
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  gw_stop_pid "$perf_pid"; gw_stop_pid "$server_pid"
  ip netns del "$SRV" 2>/dev/null; ip netns del "$CLI" 2>/dev/null
  if ((own_cp)); then
    hack/controlplane.sh down "$cp_dir" >/dev/null 2>&1
  elif [[ -n "$k8s_ns" ]]; then
    kubectl --kubeconfig "$cp_dir/kubeconfig" delete namespace "$k8s_ns" --wait=false >/dev/null 2>&1
  fi
  if ((failed)) && [[ -d "$work" ]]; then
    for f in "$work"/*.log; do
      [[ -s "$f" ]] || continue
      echo "--- last lines of $f" >&2; tail -15 "$f" >&2
    done
  fi
  if ((keep)); then echo "bench-dhcp: logs kept in $work" >&2; else rm -rf "$work"; fi
  ((failed)) && ((rc == 0)) && rc=1
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- dependencies -----------------------------------------------------------------------------
gw_step "dependencies"
export PATH="$PATH:/usr/sbin:/sbin"
need=()
gw_have perfdhcp || need+=(kea-admin)
gw_have dnsmasq || need+=(dnsmasq-base)
gw_have python3 || need+=(python3)
((${#need[@]} == 0)) || gw_apt_install "${need[@]}" >&2
kea_ok=1
if ! gw_have kea-dhcp4; then
  gw_log "installing kea-dhcp4-server (Kea baseline)"
  if ! gw_apt_install kea-dhcp4-server >&2; then
    gw_log "Kea could not be installed: dnsmasq is the only baseline"; kea_ok=0
  fi
  gw_disable_services kea-dhcp4-server
fi

# --- our server -------------------------------------------------------------------------------
# At smoke size (CI) the debug build the test stage made is reused: the figures only have to
# be printed there, and a release build of the controller would cost minutes of CI time.
if ((smoke)); then profile=debug; cargo_profile=dev; else profile=release; cargo_profile=release; fi
gw_step "build groundwork-controller ($profile)"
cargo build -q --profile "$cargo_profile" -p controller --bin groundwork-controller
controller="$CARGO_TARGET_DIR/$profile/groundwork-controller"
[[ -x "$controller" ]] || gw_die "no binary at $controller"
cp "$controller" "$work/groundwork-controller" # others may rebuild the target dir meanwhile
controller="$work/groundwork-controller"

gw_step "control plane"
export PATH="$(hack/k8s-bins/build.sh):$PATH"
if [[ -z "$cp_dir" ]]; then
  cp_dir="$work/cp"; own_cp=1
  hack/controlplane.sh up "$cp_dir" 2>"$work/controlplane.log"
else
  cp_dir="$(cd "$cp_dir" && pwd)"
  [[ -f "$cp_dir/kubeconfig" ]] || gw_die "no kubeconfig in $cp_dir"
fi
kc=(kubectl --kubeconfig "$cp_dir/kubeconfig")

gw_step "CRDs, namespace, Rack"
"${kc[@]}" apply --server-side -f charts/groundwork/crds/ >/dev/null
k8s_ns="gwbench-dhcp-$$-$RANDOM"
"${kc[@]}" create namespace "$k8s_ns" >/dev/null
"${kc[@]}" apply -f - >/dev/null <<EOF
apiVersion: groundwork.dev/v1alpha1
kind: Rack
metadata: {name: bench, namespace: $k8s_ns}
spec:
  location: {site: bench}
  networks:
    provisioning:
      subnet: 10.70.0.0/$SUBNET_PREFIX
      gateway: 10.70.0.1
      dhcpRange: {start: $RANGE_START, end: $RANGE_END}
EOF
head -c 36 /dev/urandom | base64 | tr -d '\n' >"$work/boot-token.key" # 48 characters
mkdir -p "$work/ipxe" "$work/artifacts"
: >"$work/ipxe/undionly.kpxe"; : >"$work/ipxe/ipxe.efi" # TFTP is not benchmarked

# --- network ----------------------------------------------------------------------------------
gw_step "network namespaces"
ip netns add "$SRV"; ip netns add "$CLI"
ip -n "$SRV" link add br0 type bridge forward_delay 0
ip -n "$SRV" link add veth-srv type veth peer name veth-cli netns "$CLI"
ip -n "$SRV" link set veth-srv master br0
ip -n "$SRV" addr add "$SRV_ADDR/$SUBNET_PREFIX" dev br0
ip -n "$CLI" addr add "$CLI_ADDR/$SUBNET_PREFIX" dev veth-cli
for l in lo br0 veth-srv; do ip -n "$SRV" link set "$l" up; done
for l in lo veth-cli; do ip -n "$CLI" link set "$l" up; done

# --- servers under test: start_<name> LOG sets server_pid; stop_server stops it ---------------
metrics_port=""
start_groundwork() {
  metrics_port="$(gw_free_port)"
  KUBECONFIG="$cp_dir/kubeconfig" "$controller" --namespace "$k8s_ns" \
    --metrics-addr "127.0.0.1:$metrics_port" --lease-namespace "$k8s_ns" --log-format json \
    --boot-services --dhcp-interface br0 --boot-netns "$SRV" \
    --boot-artifacts "$work/artifacts" --boot-token-key-file "$work/boot-token.key" \
    --boot-http-addr 0.0.0.0:8081 --tftp-addr 0.0.0.0:69 --ipxe-dir "$work/ipxe" >"$1" 2>&1 &
  server_pid=$!
  local deadline=$((SECONDS + 60))
  until grep -q 'boot services listening' "$1"; do
    kill -0 "$server_pid" 2>/dev/null || { gw_log "groundwork-controller exited"; tail -20 "$1" >&2; return 1; }
    ((SECONDS < deadline)) || { gw_log "groundwork-controller: no 'boot services listening' in 60 s"; return 1; }
    sleep 0.1
  done
}
start_dnsmasq() {
  local leases=(--leasefile-ro)
  ((dnsmasq_leasefile)) && { rm -f "$work/dnsmasq.leases"; leases=(--dhcp-leasefile="$work/dnsmasq.leases"); }
  ip netns exec "$SRV" dnsmasq -k --conf-file=/dev/null --port=0 --no-ping --quiet-dhcp \
    --interface=br0 --bind-interfaces --dhcp-authoritative \
    --dhcp-range="$RANGE_START,$RANGE_END,255.255.0.0,10m" --dhcp-lease-max=100000 \
    "${leases[@]}" --pid-file="$work/dnsmasq.pid" --log-facility=- >"$1" 2>&1 &
  server_pid=$!
}
start_kea() {
  local d="$work/kea"; rm -rf "$d"; mkdir -p "$d"
  cat >"$d/kea-dhcp4.json" <<EOF
{"Dhcp4": {
  "interfaces-config": {"interfaces": ["br0"]},
  "lease-database": {"type": "memfile", "persist": false, "lfc-interval": 0},
  "valid-lifetime": 600, "renew-timer": 300, "rebind-timer": 500,
  "authoritative": true,
  "subnet4": [{"id": 1, "subnet": "10.70.0.0/$SUBNET_PREFIX",
               "pools": [{"pool": "$RANGE_START - $RANGE_END"}],
               "option-data": [{"name": "routers", "data": "10.70.0.1"}]}],
  "loggers": [{"name": "kea-dhcp4", "output_options": [{"output": "stdout"}], "severity": "WARN"}]
}}
EOF
  KEA_LOCKFILE_DIR="$d" KEA_PIDFILE_DIR="$d" ip netns exec "$SRV" kea-dhcp4 -c "$d/kea-dhcp4.json" >"$1" 2>&1 &
  server_pid=$!
}
stop_server() { gw_stop_pid "$server_pid"; server_pid=""; }

# Kernel UDP receive-buffer overflows in a namespace (a server or perfdhcp not reading fast
# enough). Kea reads through a packet socket, which these counters do not see.
udp_rcvbuf_errors() {
  ip netns exec "$1" cat /proc/net/snmp | awk '/^Udp:/ { if (!h) { for (i = 2; i <= NF; i++) c[$i] = i; h = 1 } else print $c["RcvbufErrors"] }'
}
perfdhcp_cli() { ip netns exec "$CLI" perfdhcp -4 -l veth-cli "$@"; }

# Ten exchanges in 1 s from a MAC outside the benchmark's, until all complete (the server is
# ready). perfdhcp 2.2's -n N exits right after sending the last REQUEST (its -W wait is not
# honoured with -n), so the probe is time-bound (-p 1) instead.
wait_answering() { # wait_answering NAME LOG
  local deadline=$((SECONDS + 30)) rc
  while :; do
    kill -0 "$server_pid" 2>/dev/null || { gw_log "$1 exited"; tail -20 "$2" >&2; return 1; }
    rc=0; timeout 10 ip netns exec "$CLI" perfdhcp -4 -l veth-cli -r 10 -p 1 -W 300000 -R 1 \
      -b mac=02:00:5e:00:00:01 -d 0.5 >"$work/probe.out" 2>&1 || rc=$?
    ((rc == 0)) && return 0
    ((SECONDS < deadline)) || { gw_log "$1 did not answer a single DHCP exchange in 30 s"; cat "$work/probe.out" >&2; return 1; }
    sleep 0.2
  done
}

# perfdhcp output -> "rate DOsent DOrecv DOavg RAsent RArecv RAavg" ("-" when absent)
parse_perfdhcp() {
  awk '
    /^Rate:/ { rate = $2 }
    /Statistics for: DISCOVER-OFFER/ { s = "DO" }
    /Statistics for: REQUEST-ACK/ { s = "RA" }
    /^sent packets:/ { sent[s] = $3 }
    /^received packets:/ { recv[s] = $3 }
    /^avg delay:/ { avg[s] = $3 }
    function v(x) { return x == "" ? "-" : x }
    END { print v(rate), v(sent["DO"]), v(recv["DO"]), v(avg["DO"]), v(sent["RA"]), v(recv["RA"]), v(avg["RA"]) }
  ' "$1"
}

results="$work/results.tsv"; : >"$results"
servers=(groundwork dnsmasq kea)
run_one() { # run_one SERVER RATE
  local name="$1" rate="$2" log="$work/$1-$2.log" out="$work/perfdhcp-$1-$2.out" rc clients
  gw_step "$name @ $rate/s: start server"
  if ! "start_$name" "$log" || ! wait_answering "$name" "$log"; then
    stop_server
    if [[ "$name" == kea ]]; then
      gw_log "Kea failed to start: dnsmasq is the only baseline from here on"; kea_ok=0
      printf '%s\t%s\tfailed\n' "$name" "$rate" >>"$results"; return 0
    fi
    return 1
  fi
  gw_step "$name @ $rate/s: perfdhcp ${seconds} s"
  clients=$((rate * seconds))
  local srv_ovf cli_ovf
  srv_ovf=$(udp_rcvbuf_errors "$SRV"); cli_ovf=$(udp_rcvbuf_errors "$CLI")
  rc=0
  perfdhcp_cli -r "$rate" -R "$clients" -p "$seconds" -W 1000000 >"$out" 2>&1 &
  perf_pid=$!
  wait "$perf_pid" || rc=$?
  perf_pid=""
  srv_ovf=$(($(udp_rcvbuf_errors "$SRV") - srv_ovf)); cli_ovf=$(($(udp_rcvbuf_errors "$CLI") - cli_ovf))
  # 0: every exchange completed; 3: some were dropped (a result, not a failure).
  if ((rc != 0 && rc != 3)); then gw_log "perfdhcp failed (exit $rc) against $name:"; cat "$out" >&2; return 1; fi
  if [[ "$name" == groundwork ]]; then
    curl -fsS "http://127.0.0.1:$metrics_port/metrics" >"$work/metrics-$rate.txt" 2>/dev/null || true
  fi
  gw_step "$name @ $rate/s: stop server"
  stop_server
  local row
  read -r -a row < <(parse_perfdhcp "$out")
  printf '%s\t%s\tok\t%s\n' "$name" "$rate" "$(IFS=$'\t'; echo "${row[*]}")" >>"$results"
  awk -v n="$name" -v r="$rate" -v s="$seconds" -v rate_ach="${row[0]}" -v dos="${row[1]}" -v dor="${row[2]}" \
    -v doa="${row[3]}" -v ras="${row[4]}" -v rar="${row[5]}" -v raa="${row[6]}" '
    function pct(sent, recv) { return (sent == "-" || sent == 0) ? "-" : sprintf("%.2f", 100 * (sent - recv) / sent) }
    BEGIN { printf "result: %-10s @ %5s/s: offered %.1f/s, leases %.1f/s, drops DO %s %% RA %s %%, avg DO %s ms RA %s ms\n",
            n, r, (dos == "-" ? 0 : dos / s), (rar == "-" ? 0 : rar / s), pct(dos, dor), pct(ras, rar), doa, raa }'
  if ((srv_ovf || cli_ovf)); then
    echo "    kernel UDP receive-buffer overflows: server netns $srv_ovf, perfdhcp netns $cli_ovf"
  fi
  if [[ "$name" == groundwork && -s "$work/metrics-$rate.txt" ]]; then
    # The server's own counters (probe exchanges included): what it received, sent and dropped.
    awk '/^[a-z_]*dhcp_messages_total/ { match($0, /message="[a-z]*"/); m[substr($0, RSTART + 9, RLENGTH - 10)] += $NF }
         /^[a-z_]*dhcp_dropped_total/ { match($0, /reason="[a-z_]*"/); d = d " " substr($0, RSTART + 8, RLENGTH - 9) "=" $NF }
         END { printf "    groundwork counters (probes included): discover=%d offer=%d request=%d ack=%d dropped:%s\n",
               m["discover"], m["offer"], m["request"], m["ack"], (d == "" ? " none" : d) }' "$work/metrics-$rate.txt"
  fi
  if [[ "$name" == groundwork ]]; then
    grep -E '"level":"(WARN|ERROR)"' "$log" | head -5 | sed 's/^/    groundwork log: /' || true
  fi
}

for rate in "${rate_list[@]}"; do
  for name in "${servers[@]}"; do
    if [[ "$name" == kea ]] && ! ((kea_ok)); then
      printf '%s\t%s\tskipped\n' "$name" "$rate" >>"$results"; continue
    fi
    run_one "$name" "$rate"
  done
done
gw_step "tables"

# --- tables and verdict -----------------------------------------------------------------------
if ((dnsmasq_leasefile)); then dm="dnsmasq 2.90 no-ping, lease file"; else dm="dnsmasq 2.90 no-ping, --leasefile-ro"; fi
python3 - "$results" "$seconds" "$dm" <<'PY'
import sys
path, seconds, dm = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rows = {}
rates = []
for line in open(path):
    f = line.rstrip("\n").split("\t")
    name, rate, status = f[0], int(f[1]), f[2]
    if rate not in rates:
        rates.append(rate)
    if status != "ok":
        rows[(name, rate)] = None
        continue
    num = lambda x: None if x == "-" else float(x)
    rate_ach, do_s, do_r, do_avg, ra_s, ra_r, ra_avg = map(num, f[3:10])
    pct = lambda s, r: None if not s else 100.0 * (s - (r or 0)) / s
    rows[(name, rate)] = dict(
        leases=(ra_r or 0) / seconds, offered=(do_s or 0) / seconds,
        do_drop=pct(do_s, do_r), ra_drop=pct(ra_s, ra_r), do_avg=do_avg, ra_avg=ra_avg,
        zero=(do_s or 0) > 0 and do_s == do_r and ra_s == ra_r)

fmt = lambda v, p=2: "-" if v is None else f"{v:.{p}f}"
servers = ["groundwork", "dnsmasq", "kea"]
print()
print(f"DHCP benchmark: perfdhcp DORA exchanges, {seconds} s per rate, clients = rate x {seconds}")
print(f"servers: groundwork (release build), {dm}, kea-dhcp4 2.2 memfile persist=false, single-threaded")
print(f"{'rate/s':>7} {'server':<10} {'offered/s':>9} {'leases/s':>9} {'DO drop%':>9} {'RA drop%':>9} {'DO avg ms':>10} {'RA avg ms':>10}")
for rate in rates:
    for s in servers:
        r = rows.get((s, rate), None)
        if r is None:
            print(f"{rate:>7} {s:<10} {'(not run)':>9}")
            continue
        print(f"{rate:>7} {s:<10} {r['offered']:>9.1f} {r['leases']:>9.1f} {fmt(r['do_drop']):>9} "
              f"{fmt(r['ra_drop']):>9} {fmt(r['do_avg'], 3):>10} {fmt(r['ra_avg'], 3):>10}")
print()
cell = lambda r: "n/a" if r is None else f"{r['leases']:.1f} ({fmt(r['do_drop'])}/{fmt(r['ra_drop'])}%)"
print("leases/s (DISCOVER->OFFER / REQUEST->ACK drop %) side by side")
print(f"{'rate/s':>7}  {'groundwork':<24} {'dnsmasq':<24} {'kea':<24} {'ours/dnsmasq':>12}")
for rate in rates:
    g, d, k = (rows.get((s, rate)) for s in servers)
    ratio = "-" if not g or not d or not d["leases"] else f"{g['leases'] / d['leases']:.2f}"
    print(f"{rate:>7}  {cell(g):<24} {cell(d):<24} {cell(k):<24} {ratio:>12}")
print()
sustained = [r for r in rates if rows.get(("dnsmasq", r)) and rows[("dnsmasq", r)]["zero"]]
if sustained:
    at = max(sustained)
    why = f"the highest rate dnsmasq sustained with 0 % drops is {at}/s"
else:
    done = [r for r in rates if rows.get(("dnsmasq", r))]
    at = max(done, key=lambda r: rows[("dnsmasq", r)]["leases"]) if done else None
    why = f"dnsmasq dropped at every rate; comparing at its best throughput ({at}/s)"
g = rows.get(("groundwork", at)) if at else None
d = rows.get(("dnsmasq", at)) if at else None
best = []
for s in servers:
    ok = [r for r in rates if rows.get((s, r)) and rows[(s, r)]["zero"]]
    best.append(f"{s} {max(ok)}/s" if ok else f"{s} none")
print("highest tested rate sustained with 0 % drops: " + ", ".join(best))
if not g or not d:
    print("verdict: no comparison possible (a run is missing)")
else:
    ok = g["zero"] and g["leases"] >= 0.99 * d["leases"]
    print(f"target: at least dnsmasq's throughput with 0 % drops at the rate dnsmasq sustains ({why})")
    print(f"verdict: {'MET' if ok else 'MISSED'} — groundwork {g['leases']:.1f} leases/s, drops "
          f"{fmt(g['do_drop'])}/{fmt(g['ra_drop'])} %; dnsmasq {d['leases']:.1f} leases/s, drops "
          f"{fmt(d['do_drop'])}/{fmt(d['ra_drop'])} %")
PY
gw_step "done"
failed=0
