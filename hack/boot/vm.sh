#!/usr/bin/env bash
# Starts one QEMU VM in the background (TCG: KVM is unusable on these machines) and prints its
# PID; stops it again by PID.
#   hack/boot/vm.sh --name N --mac MAC --tap TAPDEV --firmware bios|uefi --serial LOGFILE \
#     --pidfile F [--netns NS] [--disk FILE] [--state-dir DIR] [--memory MiB] \
#     [--boot net|disk|default]
#   hack/boot/vm.sh --stop PIDFILE
# --boot (the BMC's boot device override; a BMC's GW_BOOTDEV pxe maps to net):
#   net      the NIC boots first, then the disk (raw, or qcow2 by extension);
#   disk     only the disk: the NIC has no boot index and no option ROM, so nothing network
#            boots (needs --disk);
#   default  (the default) the disk first, then the NIC: a blank disk is skipped quickly.
# The serial log is appended to, never truncated. bios: SeaBIOS + QEMU's iPXE ROM (none with
# --boot disk), both on the serial log. uefi: OVMF's own HTTP boot (PXE disabled; with
# --boot disk the NIC has no boot index, which OVMF's boot order then leaves out), NVRAM in
# DIR/OVMF_VARS.fd (kept across starts; delete it for a factory reset). The guest powers off to end the run (-no-reboot); QEMU then deletes the
# pidfile itself, so "pidfile gone" means "VM off".
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

stop() { # PIDFILE: stops the VM only if the PID still is a QEMU (no PID reuse)
  local f="$1" pid
  [[ -f "$f" ]] || return 0
  pid="$(cat "$f")"
  if [[ "$pid" =~ ^[0-9]+$ ]] && [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == qemu* ]]; then
    gw_stop_pid "$pid"
  fi
  rm -f "$f"
}

name="" mac="" tap="" fw="" serial="" pidfile="" netns="" disk="" state="" mem=512 boot=default
while [[ $# -gt 0 ]]; do
  [[ $# -ge 2 ]] || gw_usage 2 "$1 needs a value"
  case "$1" in
    --stop) stop "$2"; exit 0 ;;
    --name) name="$2" ;;
    --mac) mac="$2" ;;
    --tap) tap="$2" ;;
    --firmware) fw="$2" ;;
    --serial) serial="$2" ;;
    --pidfile) pidfile="$2" ;;
    --netns) netns="$2" ;;
    --disk) disk="$2" ;;
    --state-dir) state="$2" ;;
    --memory) mem="$2" ;;
    --boot) boot="$2" ;;
    *) gw_usage 2 "unknown option $1" ;;
  esac
  shift 2
done
for v in name mac tap fw serial pidfile; do [[ -n "${!v}" ]] || gw_usage 2 "missing --${v/fw/firmware}"; done
[[ "$fw" == bios || "$fw" == uefi ]] || gw_usage 2 "--firmware must be bios or uefi"
[[ "$boot" == pxe ]] && boot=net # the BMC's name for it
[[ "$boot" == net || "$boot" == disk || "$boot" == default ]] || gw_usage 2 "--boot must be net, disk or default"
[[ "$boot" != disk || -n "$disk" ]] || gw_usage 2 "--boot disk needs --disk"

# QEMU -daemonize does chdir /: every path must be absolute.
state="$(realpath -m "${state:-$(dirname "$pidfile")/$name}")"
serial="$(realpath -m "$serial")"
pidfile="$(realpath -m "$pidfile")"
mkdir -p "$state" "$(dirname "$serial")" "$(dirname "$pidfile")"
stop "$pidfile" # a stale VM of the same pidfile would hold the tap

args=(-name "$name" -accel tcg -m "$mem" -nodefaults -display none -vga none -monitor none
  -no-reboot
  -chardev "file,id=s0,path=$serial,append=on" -serial chardev:s0
  -netdev "tap,id=n0,ifname=$tap,script=no,downscript=no"
  -daemonize -pidfile "$pidfile")
# Boot indexes: firmware tries them in order (SeaBIOS and OVMF read QEMU's bootorder).
case "$boot" in
  net) nic_idx=1 disk_idx=2 ;;
  disk) nic_idx="" disk_idx=1 ;;
  default) nic_idx=2 disk_idx=1 ;;
esac
nic="virtio-net-pci,netdev=n0,mac=$mac"
[[ -z "$nic_idx" ]] || nic="$nic,bootindex=$nic_idx"

case "$fw" in
  bios)
    # SeaBIOS's serial console (sercon) at 0x3f8 also carries iPXE's BIOS-console output.
    # (QEMU warns that the name lacks "opt/": SeaBIOS reads exactly this name; harmless.)
    printf '\xf8\x03\x00\x00\x00\x00\x00\x00' >"$state/sercon-port"
    args+=(-machine pc -fw_cfg "name=etc/sercon-port,file=$state/sercon-port")
    [[ "$boot" != net ]] || args+=(-boot n)
    # Disk only: romfile= (empty) leaves out iPXE's option ROM, so the NIC can't boot at all.
    [[ "$boot" != disk ]] || nic="$nic,romfile="
    args+=(-device "$nic")
    ;;
  uefi)
    code=/usr/share/OVMF/OVMF_CODE_4M.fd
    [[ -f "$code" ]] || gw_die "no $code (run hack/deps/boot.sh)"
    [[ -f "$state/OVMF_VARS.fd" ]] || cp /usr/share/OVMF/OVMF_VARS_4M.fd "$state/OVMF_VARS.fd"
    # romfile= (empty): no iPXE option ROM, OVMF's own network stack boots; PXE off so it goes
    # straight to HTTP boot.
    args+=(-machine q35
      -drive "if=pflash,format=raw,unit=0,readonly=on,file=$code"
      -drive "if=pflash,format=raw,unit=1,file=$state/OVMF_VARS.fd"
      -fw_cfg "name=opt/org.tianocore/IPv4PXESupport,string=n"
      -fw_cfg "name=opt/org.tianocore/IPv6PXESupport,string=n"
      -device "$nic,romfile=")
    ;;
esac

if [[ -n "$disk" ]]; then
  disk="$(realpath -e "$disk")"
  fmt=raw
  [[ "$disk" == *.qcow2 ]] && fmt=qcow2
  # A serial number (virtio-blk: at most 20 bytes) gives the inventory something to report.
  serialno="gw-$name"
  args+=(-drive "if=none,id=d0,format=$fmt,file=$disk"
    -device "virtio-blk-pci,drive=d0,bootindex=$disk_idx,serial=${serialno:0:20}")
fi

run=()
[[ -z "$netns" ]] || run=(ip netns exec "$netns") # the tap lives in that namespace
# -daemonize returns once QEMU is set up (bad tap, missing file: non-zero exit here) and QEMU
# itself writes the pidfile.
"${run[@]}" qemu-system-x86_64 "${args[@]}"
cat "$pidfile"
