#!/bin/sh
# /init of the Groundwork test "installed OS" (busybox sh, built by hack/boot/test-os.sh into a
# disk image the agent writes). Reads the cloud-init NoCloud config drive the controller appends
# as the disk's last partition (FAT label CIDATA): meta-data (instance-id, local-hostname,
# groundwork-checkin-url) and network-config (netplan v2, the shape the controller writes).
# Sets the hostname, configures the NIC whose MAC the config names (addresses, default route),
# prints one summary line and POSTs a check-in to groundwork-checkin-url; then stays up.
# Console lines all start with "groundwork-os:". /init must never exit (the kernel would panic).
export PATH=/bin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1

log() { echo "groundwork-os: $*"; }
forever() { while :; do sleep 3600; done; }

log "start $(cat /proc/sys/kernel/osrelease)"
# Module order matters (no modprobe/depmod here): test-os.sh writes it to /etc/modules.
while read -r m; do
  [ -n "$m" ] || continue
  insmod "/lib/modules/$m.ko" || log "insmod $m failed"
done </etc/modules
ip link set lo up

# --- config drive -----------------------------------------------------------------------
# virtio_blk scans the partition table while it probes; give devtmpfs a moment anyway.
i=0
while [ ! -b /dev/vda ] && [ "$i" -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
dev="$(findfs LABEL=CIDATA 2>/dev/null || findfs LABEL=cidata 2>/dev/null)"
if [ -z "$dev" ]; then
  # Fallback: the last partition of the disk, if it is a FAT file system with a meta-data file.
  last=0
  for p in /sys/block/vda/vda*; do
    [ -e "$p" ] || continue
    k="${p##*/vda}"
    [ "$k" -gt "$last" ] && last="$k"
  done
  [ "$last" -gt 1 ] && dev="/dev/vda$last"
fi
mkdir -p /cidata
if [ -z "$dev" ] || ! mount -t vfat -o ro "$dev" /cidata 2>/dev/null || [ ! -f /cidata/meta-data ]; then
  log "no config drive"
  forever
fi
log "config drive $dev"

# meta-data: flat "key: value" YAML lines (values may be quoted).
meta() {
  sed -n "s/^$1:[[:space:]]*//p" /cidata/meta-data | head -n 1 |
    sed 's/[[:space:]]*$//; s/^"\(.*\)"$/\1/; s/^'"'"'\(.*\)'"'"'$/\1/' | tr -d '\r'
}
id="$(meta instance-id)"
host="$(meta local-hostname)"
url="$(meta groundwork-checkin-url)"
[ -n "$host" ] && hostname "$host"

# network-config (netplan v2). The awk keeps a stack of the keys above each line (by indent)
# and prints, per ethernet: "mac ID MAC", "addr ID CIDR" (the ethernet's own addresses list,
# not nameservers.addresses) and "gw ID GATEWAY" (routes: to default/0.0.0.0/0, or gateway4).
facts="$(awk '
  function unq(v) { sub(/^[ \t]+/, "", v); sub(/[ \t]+$/, "", v); if (v ~ /^".*"$/ || v ~ /^\047.*\047$/) v = substr(v, 2, length(v) - 2); return v }
  function popto(ind) { while (n > 0 && ki[n] >= ind) n-- }
  function path(   p, j) { p = ""; for (j = 1; j <= n; j++) p = p "/" kn[j]; return p }
  function flush() { if (rid != "" && (rto == "default" || rto == "0.0.0.0/0") && rvia != "") print "gw", rid, rvia; rid = ""; rto = ""; rvia = "" }
  function key(ind, s,   k, v) {
    k = s; sub(/:.*/, "", k); v = s; sub(/^[^:]*:/, "", v); v = unq(v)
    popto(ind); n++; kn[n] = unq(k); ki[n] = ind; kv[n] = v
    p = path()
    if (p ~ /^\/ethernets\/[^\/]+\/match\/macaddress$/) print "mac", kn[2], tolower(v)
    if (p ~ /^\/ethernets\/[^\/]+\/gateway4$/) print "gw", kn[2], v
    if (p ~ /^\/ethernets\/[^\/]+\/routes\/to$/) { rid = kn[2]; rto = v }
    if (p ~ /^\/ethernets\/[^\/]+\/routes\/via$/) { rid = kn[2]; rvia = v }
  }
  {
    sub(/\r$/, "")
    if ($0 ~ /^[ \t]*(#.*)?$/) next
    match($0, /^ */); ind = RLENGTH; s = substr($0, ind + 1)
    if (s ~ /^-( |$)/) {
      # A list item: its parent is the nearest key above with a smaller indent, or an empty
      # key at the same indent ("addresses:\n- x").
      while (n > 0 && (ki[n] > ind || (ki[n] == ind && kv[n] != ""))) n--
      p = path()
      if (p ~ /\/routes$/) flush()
      s = substr(s, 2); match(s, /^ */); ind2 = ind + 1 + RLENGTH; s = substr(s, RLENGTH + 1)
      if (s ~ /^[^ "\047][^:]*:( |$)/) { key(ind2, s); next }
      if (p ~ /^\/ethernets\/[^\/]+\/addresses$/) print "addr", kn[2], unq(s)
      next
    }
    if (s ~ /^[^:]+:( |$)/) key(ind, s)
  }
  END { flush() }
' /cidata/network-config 2>/dev/null)"

addrs=""
for eid in $(echo "$facts" | awk '$1 == "mac" { print $2 }'); do
  want="$(echo "$facts" | awk -v e="$eid" '$1 == "mac" && $2 == e { print $3; exit }')"
  iface=""
  j=0
  while [ -z "$iface" ] && [ "$j" -lt 50 ]; do
    for d in /sys/class/net/*; do
      [ "$(cat "$d/address" 2>/dev/null)" = "$want" ] && { iface="${d##*/}"; break; }
    done
    [ -n "$iface" ] || { sleep 0.1; j=$((j + 1)); }
  done
  if [ -z "$iface" ]; then
    log "no NIC with MAC $want ($eid)"
    continue
  fi
  ip link set "$iface" up
  for a in $(echo "$facts" | awk -v e="$eid" '$1 == "addr" && $2 == e { print $3 }'); do
    ip addr add "$a" dev "$iface" || log "ip addr add $a dev $iface failed"
    addrs="${addrs:+$addrs,}$a"
  done
  for g in $(echo "$facts" | awk -v e="$eid" '$1 == "gw" && $2 == e { print $3 }'); do
    ip route replace default via "$g" dev "$iface" || log "default route via $g failed"
  done
done

log "hostname=$(hostname) addresses=$addrs instance-id=$id"

if [ -z "$url" ]; then
  log "no groundwork-checkin-url"
  forever
fi
clean() { printf '%s' "$1" | tr -d '"\\\000-\037'; }
list=""
for a in $(echo "$addrs" | tr ',' ' '); do list="${list:+$list,}\"$(clean "$a")\""; done
json="{\"hostname\":\"$(clean "$(hostname)")\",\"addresses\":[$list],\"instanceId\":\"$(clean "$id")\"}"

# Every 2 s for up to 10 min. Debian's busybox wget has no working -T: bound it with timeout.
start="$(cut -d. -f1 /proc/uptime)"
while :; do
  if reply="$(timeout 10 wget -q -O - --header 'Content-Type: application/json' \
    --post-data "$json" "$url" 2>/dev/null)"; then
    log "checked in"
    [ -z "$reply" ] || log "check-in reply: $reply"
    break
  fi
  if [ $(($(cut -d. -f1 /proc/uptime) - start)) -ge 600 ]; then
    log "check-in failed for 10 min: $url"
    break
  fi
  sleep 2
done
forever
