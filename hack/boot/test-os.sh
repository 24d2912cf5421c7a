#!/usr/bin/env bash
# Builds the test "installed OS" disk image the agent writes in the lab:
#   hack/boot/test-os.sh OUTFILE  ->  OUTFILE (raw, 48 MiB), OUTFILE.sha256,
#                                     OUTFILE.zst (zstd -19), OUTFILE.zst.sha256
# (each .sha256 holds "<hex>  <file name>", like sha256sum). The image: GPT with one EFI System
# partition (FAT16 at 1 MiB, attribute LegacyBIOSBootable) holding
#   - BIOS: syslinux (ldlinux.sys, installed with the mtools variant) + syslinux.cfg booting
#     /vmlinuz + /initrd.img; gptmbr.bin in the first 440 bytes finds the partition;
#   - UEFI: \EFI\BOOT\BOOTX64.EFI, a unified kernel image (systemd-boot-efi's
#     linuxx64.efi.stub + .osrel/.cmdline/.linux/.initrd sections, made with objcopy).
# Both boot Debian's kernel with "console=ttyS0,115200 groundwork.os=test" and a busybox
# initramfs whose /init is hack/boot/test-os-init.sh (config drive -> network -> check-in).
# Nothing is mounted (LABS.md section 9): mkfs.vfat -C, mcopy, sfdisk, dd conv=notrunc.
# Cached under ${GROUNDWORK_CACHE:-$HOME/.cache/groundwork}/test-os/<key>/, keyed by both
# scripts, hack/lib.sh, the kernel, busybox, the EFI stub and syslinux; flock serialises builders.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

[[ $# -eq 1 ]] || gw_usage
out="$1"
here="$GW_ROOT/hack/boot"

# insmod order: dependencies first (no depmod/modprobe). virtio, then vfat for the config drive:
# Debian's vfat needs fat, and the default codepage (437) and iocharset (ascii; utf8 for the
# utf8 option) are separate NLS modules.
modules=("${GW_VIRTIO_MODULES[@]}" fat vfat nls_cp437 nls_ascii nls_iso8859-1 nls_utf8)
cmdline="console=ttyS0,115200 groundwork.os=test"
size_mib=48
stub=/usr/lib/systemd/boot/efi/linuxx64.efi.stub
gptmbr=/usr/lib/SYSLINUX/gptmbr.bin

gw_guest_inputs
for f in "$stub" "$gptmbr"; do
  [[ -f "$f" ]] || gw_die "no $f (run hack/deps/boot.sh)"
done
for c in syslinux mcopy mmd mkfs.vfat sfdisk objcopy objdump zstd cpio; do
  gw_have "$c" || gw_die "no $c (run hack/deps/boot.sh)"
done
export PATH="$PATH:/usr/sbin:/sbin"

key="$({
  cat "$here/test-os.sh" "$here/test-os-init.sh" "$GW_ROOT/hack/lib.sh"
  echo "$GW_KVER"
  sha256sum <"$GW_KERNEL"
  echo "$GW_BBVER"
  sha256sum <"$stub"
  sha256sum <"$gptmbr"
  syslinux --version 2>&1 | head -n 1
} | sha256sum | cut -c1-64)"

initramfs() { # DIR -> DIR/initrd.img
  gw_busybox_root "$1/root" "$here/test-os-init.sh" "${modules[@]}"
  mkdir -p "$1/root/cidata"
  gw_cpio "$1/root" "$1/initrd.img"
}

uki() { # DIR (with vmlinuz, initrd.img) -> DIR/BOOTX64.EFI
  local d="$1" off sec
  printf 'ID=groundwork-test\nNAME="Groundwork test OS"\nVERSION_ID=1\n' >"$d/os-release"
  printf '%s' "$cmdline" >"$d/cmdline"
  # The new sections go right after the stub's last one (its VMA + size, as objdump -h prints
  # them), each 4 KiB-aligned; the stub finds them by name.
  off="$(objdump -h "$stub" | awk 'NF == 7 && $1 ~ /^[0-9]+$/ { e = "0x" $4 " + 0x" $3 } END { print e }')"
  off=$(((off + 4095) / 4096 * 4096))
  local args=()
  for sec in osrel:os-release cmdline:cmdline linux:vmlinuz initrd:initrd.img; do
    args+=(--add-section ".${sec%%:*}=$d/${sec#*:}" --change-section-vma ".${sec%%:*}=$(printf '0x%x' "$off")")
    off=$(((off + $(stat -c %s "$d/${sec#*:}") + 4095) / 4096 * 4096))
  done
  objcopy "${args[@]}" "$stub" "$d/BOOTX64.EFI"
  rm -f "$d/os-release" "$d/cmdline"
}

build() { # DIR
  local tmp="$1" img fat start=2048 fat_sectors total
  cp "$GW_KERNEL" "$tmp/vmlinuz"
  initramfs "$tmp"
  uki "$tmp"

  total=$((size_mib * 2048))
  # The partition: 1 MiB in, up to 1 MiB before the end (room for the backup GPT).
  fat_sectors=$((total - start - 2048))
  fat="$tmp/fat.img"
  # -h: hidden sectors = the partition's offset, for boot code that reads it from the BPB.
  mkfs.vfat -C -F 16 -n GWTESTOS -h "$start" -i 47570001 "$fat" $((fat_sectors / 2)) >/dev/null
  printf '%s\n' "DEFAULT os" "PROMPT 0" "TIMEOUT 0" "LABEL os" \
    "  KERNEL /vmlinuz" "  INITRD /initrd.img" "  APPEND $cmdline" >"$tmp/syslinux.cfg"
  export MTOOLS_SKIP_CHECK=1
  syslinux --install "$fat"
  mcopy -i "$fat" "$tmp/syslinux.cfg" "$tmp/vmlinuz" "$tmp/initrd.img" ::/
  mmd -i "$fat" ::/EFI ::/EFI/BOOT
  mcopy -i "$fat" "$tmp/BOOTX64.EFI" ::/EFI/BOOT/BOOTX64.EFI

  img="$tmp/disk.img"
  truncate -s "${size_mib}M" "$img"
  # Fixed GUIDs: same inputs, same bytes.
  sfdisk -q --no-reread --no-tell-kernel "$img" <<EOT
label: gpt
label-id: 6E1A3F0C-47A5-4E55-9C1B-0000000000A1
first-lba: 2048
start=$start, size=$fat_sectors, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=6E1A3F0C-47A5-4E55-9C1B-0000000000B1, name="EFI", attrs="LegacyBIOSBootable"
EOT
  dd if="$fat" of="$img" bs=512 seek="$start" conv=notrunc status=none
  dd if="$gptmbr" of="$img" bs=440 count=1 conv=notrunc status=none
  rm -f "$fat" "$tmp"/{vmlinuz,initrd.img,BOOTX64.EFI,syslinux.cfg}
  touch -d @0 "$img"
  chmod 0444 "$img"

  zstd -q -19 -T0 "$img" -o "$tmp/disk.img.zst"
  chmod 0444 "$tmp/disk.img.zst"
  (cd "$tmp" && sha256sum disk.img | cut -c1-64 >disk.img.sha256 &&
    sha256sum disk.img.zst | cut -c1-64 >disk.img.zst.sha256)
}
gw_cached test-os "$key" disk.img.zst.sha256 build
dir="$GW_CACHED"

mkdir -p "$(dirname "$out")"
name="$(basename "$out")"
for suffix in "" .zst; do
  f="$out$suffix"
  gw_place "$dir/disk.img$suffix" "$f"
  # "<hex>  <file name>" (sha256sum -c in OUTFILE's directory checks it).
  printf '%s  %s\n' "$(cat "$dir/disk.img$suffix.sha256")" "$name$suffix" >"$f.sha256.$$"
  mv -f "$f.sha256.$$" "$f.sha256"
  echo "$f"
done
