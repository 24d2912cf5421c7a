#!/usr/bin/env bash
# Installs the network-boot peers: QEMU with its iPXE ROMs, Debian's iPXE binaries (what our
# TFTP serves), OVMF (UEFI HTTP boot), Debian's kernel + busybox + cpio (the test ramdisk),
# the test OS disk image's tools (syslinux, mtools, dosfstools, systemd-boot-efi, zstd),
# ISC dhcrelay (the top-of-rack relay), busybox udhcpc (a plain client), perfdhcp (load) and
# dnsmasq (the baseline). Idempotent: apt-get runs only when something is missing.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

need=()
have_file() { [ -e "$1" ]; }
gw_have qemu-system-x86_64 || need+=(qemu-system-x86)
have_file /usr/lib/ipxe/qemu/efi-virtio.rom || need+=(ipxe-qemu)
have_file /usr/lib/ipxe/undionly.kpxe || need+=(ipxe)
have_file /usr/share/OVMF/OVMF_CODE_4M.fd || need+=(ovmf)
# The ramdisk needs a static busybox (Debian's plain `busybox` package is dynamic).
busybox_linkage="$(ldd /bin/busybox 2>&1 || true)"
if ! have_file /bin/busybox || [[ "$busybox_linkage" != *"not a dynamic"* && "$busybox_linkage" != *"statically linked"* ]]; then
  need+=(busybox-static)
fi
gw_have cpio || need+=(cpio)
gw_have dnsmasq || need+=(dnsmasq-base)
gw_have dhcrelay || need+=(isc-dhcp-relay)
gw_have perfdhcp || need+=(kea-admin)
gw_have kea-dhcp4 || need+=(kea-dhcp4-server)
gw_have curl || need+=(curl)
ls /boot/vmlinuz-* >/dev/null 2>&1 || need+=(linux-image-amd64)
# The ramdisk checks the agent binary is static (file) and strips it (binutils).
gw_have file || need+=(file)
gw_have strip || need+=(binutils)
# The test OS disk image (hack/boot/test-os.sh): GPT (sfdisk), FAT without mounting (mkfs.vfat,
# mtools), syslinux for BIOS (gptmbr.bin from syslinux-common), a unified kernel image for UEFI
# (systemd-boot-efi's stub + objcopy), zstd. systemd-boot-efi pins the host's systemd version,
# so installing it may upgrade systemd.
gw_have sfdisk || need+=(fdisk)
gw_have mkfs.vfat || need+=(dosfstools)
gw_have mcopy || need+=(mtools)
gw_have syslinux || need+=(syslinux)
have_file /usr/lib/SYSLINUX/gptmbr.bin || need+=(syslinux-common)
have_file /usr/lib/systemd/boot/efi/linuxx64.efi.stub || need+=(systemd-boot-efi)
gw_have objcopy || need+=(binutils)
gw_have zstd || need+=(zstd)
# The node OS image (hack/node-os/build.sh): an ext4 root made without mounting (mke2fs -d),
# modules.dep for its modules (depmod), its smoke test's copy-on-write disk (qemu-img).
gw_have mke2fs || need+=(e2fsprogs)
gw_have depmod || need+=(kmod)
gw_have qemu-img || need+=(qemu-utils)

if [ ${#need[@]} -eq 0 ]; then
  echo "boot deps: all present"
  exit 0
fi
# The kernel package would run initramfs hooks for a machine we never boot: skip them.
INITRD=No gw_apt_install "${need[@]}"
gw_disable_services dnsmasq isc-dhcp-relay kea-dhcp4-server
echo "boot deps: done"
