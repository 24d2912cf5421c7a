#!/usr/bin/env bash
# Installs the network-boot peers: QEMU with its iPXE ROMs, Debian's iPXE binaries (what our
# TFTP serves), OVMF (UEFI HTTP boot), Debian's kernel + busybox + cpio (the test ramdisk),
# the test OS disk image's tools (syslinux, mtools, dosfstools, systemd-boot-efi, zstd),
# ISC dhcrelay (the top-of-rack relay), busybox udhcpc (a plain client), perfdhcp (load) and
# dnsmasq (the baseline). Idempotent: apt-get runs only when something is missing.
set -euo pipefail

need=()
have_file() { [ -e "$1" ]; }
have_cmd() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }
have_cmd qemu-system-x86_64 || need+=(qemu-system-x86)
have_file /usr/lib/ipxe/qemu/efi-virtio.rom || need+=(ipxe-qemu)
have_file /usr/lib/ipxe/undionly.kpxe || need+=(ipxe)
have_file /usr/share/OVMF/OVMF_CODE_4M.fd || need+=(ovmf)
# The ramdisk needs a static busybox (Debian's plain `busybox` package is dynamic).
busybox_linkage="$(ldd /bin/busybox 2>&1 || true)"
if ! have_file /bin/busybox || [[ "$busybox_linkage" != *"not a dynamic"* && "$busybox_linkage" != *"statically linked"* ]]; then
  need+=(busybox-static)
fi
have_cmd cpio || need+=(cpio)
have_cmd dnsmasq || need+=(dnsmasq-base)
have_cmd dhcrelay || need+=(isc-dhcp-relay)
have_cmd perfdhcp || need+=(kea-admin)
have_cmd kea-dhcp4 || need+=(kea-dhcp4-server)
have_cmd curl || need+=(curl)
ls /boot/vmlinuz-* >/dev/null 2>&1 || need+=(linux-image-amd64)
# The ramdisk checks the agent binary is static (file) and strips it (binutils).
have_cmd file || need+=(file)
have_cmd strip || need+=(binutils)
# The test OS disk image (hack/boot/test-os.sh): GPT (sfdisk), FAT without mounting (mkfs.vfat,
# mtools), syslinux for BIOS (gptmbr.bin from syslinux-common), a unified kernel image for UEFI
# (systemd-boot-efi's stub + objcopy), zstd. systemd-boot-efi pins the host's systemd version,
# so installing it may upgrade systemd.
have_cmd sfdisk || need+=(fdisk)
have_cmd mkfs.vfat || need+=(dosfstools)
have_cmd mcopy || need+=(mtools)
have_cmd syslinux || need+=(syslinux)
have_file /usr/lib/SYSLINUX/gptmbr.bin || need+=(syslinux-common)
have_file /usr/lib/systemd/boot/efi/linuxx64.efi.stub || need+=(systemd-boot-efi)
have_cmd objcopy || need+=(binutils)
have_cmd zstd || need+=(zstd)

if [ ${#need[@]} -eq 0 ]; then
  echo "boot deps: all present"
  exit 0
fi
mapfile -t pkgs < <(printf '%s\n' "${need[@]}" | sort -u)
echo "boot deps: installing ${pkgs[*]}"
export DEBIAN_FRONTEND=noninteractive
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
# The kernel package would run initramfs hooks for a machine we never boot: skip them.
$SUDO env INITRD=No apt-get install -y -qq --no-install-recommends "${pkgs[@]}"
for svc in dnsmasq isc-dhcp-relay kea-dhcp4-server; do
  if command -v systemctl >/dev/null 2>&1; then
    $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || true
  fi
done
echo "boot deps: done"
