#!/usr/bin/env bash
# Tools the agent's image-writer tests and benchmark use against real loop devices: sfdisk
# (a partition table to refuse), zstd and gzip (compressed images), qemu-img (qcow2 images),
# losetup. Installs only what is missing.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
need=()
gw_have sfdisk || need+=(fdisk)
gw_have zstd || need+=(zstd)
gw_have gzip || need+=(gzip)
gw_have qemu-img || need+=(qemu-utils)
gw_have losetup || need+=(mount)
if ((${#need[@]} == 0)); then
  echo "agent deps: all present"
  exit 0
fi
gw_apt_install "${need[@]}"
