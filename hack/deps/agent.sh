#!/usr/bin/env bash
# Tools the agent's image-writer tests and benchmark use against real loop devices: sfdisk
# (a partition table to refuse), zstd and gzip (compressed images), qemu-img (qcow2 images),
# losetup. Installs only what is missing.
set -euo pipefail
need=()
command -v sfdisk >/dev/null 2>&1 || [ -x /usr/sbin/sfdisk ] || need+=(fdisk)
command -v zstd >/dev/null 2>&1 || need+=(zstd)
command -v gzip >/dev/null 2>&1 || need+=(gzip)
command -v qemu-img >/dev/null 2>&1 || need+=(qemu-utils)
command -v losetup >/dev/null 2>&1 || [ -x /usr/sbin/losetup ] || need+=(mount)
if [ ${#need[@]} -eq 0 ]; then
  echo "agent deps: all present"
  exit 0
fi
echo "agent deps: installing ${need[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
