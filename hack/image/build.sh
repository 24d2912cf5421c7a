#!/usr/bin/env bash
# Builds the controller's container image without a container engine:
#   1. static release binaries of groundwork-controller and groundwork-edge (cargo, glibc with
#      crt-static, as the agent in the ramdisk);
#   2. the root filesystem (hack/image/rootfs.sh: the same script the Containerfile runs);
#   3. an OCI image layout and OCI archive (hack/image/oci-image, built on go-containerregistry
#      from the Go module proxy): one layer, files owned by root, every time the commit's time.
# Two builds of one commit give the same digest. Cached under $GW_CACHE/image by the inputs.
#
#   hack/image/build.sh [DIR]   prints: ARCHIVE DIGEST REF
# ARCHIVE is the OCI archive (for `ctr images import`); beside it `layout/` (the OCI layout) and
# `rootfs/`. With DIR (must not exist) the image is built there, bypassing the cache (the tests
# build twice to compare digests).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
here="$GW_ROOT/hack/image"
ref="${GROUNDWORK_IMAGE_REF:-ghcr.io/groundwork-dev/groundwork-controller:dev}"
missing=()
for pkg in libcap2-bin ipmitool bird2 ipxe ca-certificates file; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
((${#missing[@]} == 0)) || gw_apt_install "${missing[@]}"
gw_go

gw_log "building the static controller and edge daemon (cargo release, $CARGO_TARGET_DIR)"
gw_plain_cargo_env
(cd "$GW_ROOT" && CARGO_INCREMENTAL=0 RUSTFLAGS="-C target-feature=+crt-static" \
  cargo build --release --locked -q --target x86_64-unknown-linux-gnu \
  -p controller --bin groundwork-controller -p edge --bin groundwork-edge) >&2
bins="$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release"

tool="$GW_CACHE/image/oci-image-$(cat "$here/go.mod" "$here/go.sum" "$here/oci-image/main.go" | sha256sum | cut -c1-16)"
if [[ ! -x "$tool" ]]; then
  mkdir -p "$GW_CACHE/image"
  (cd "$here" && CGO_ENABLED=0 go build -trimpath -o "$tool.tmp" ./oci-image) >&2
  mv "$tool.tmp" "$tool"
fi

# The commit's time (files and image); a tree with uncommitted changes still gets one time.
epoch="$(git -C "$GW_ROOT" log -1 --format=%ct 2>/dev/null || echo 0)"
key="$({
  sha256sum "$bins/groundwork-controller" "$bins/groundwork-edge" "$here/rootfs.sh" "$tool" | cut -c1-64
  dpkg-query -W ipmitool bird2 ipxe ca-certificates libc6 libfreeipmi17 libssh-gcrypt-4 libgcrypt20 libkrb5-3
  sha256sum /etc/ssl/certs/ca-certificates.crt | cut -c1-64
  echo "$epoch $ref"
} | sha256sum | cut -c1-16)"
build() { # DIR
  "$here/rootfs.sh" "$1/rootfs" "$bins"
  "$tool" -rootfs "$1/rootfs" -layout "$1/layout" -archive "$1/image.tar" -ref "$ref" \
    -entrypoint /usr/local/bin/groundwork-controller -user 65532:65532 -port 8080/tcp \
    -epoch "$epoch" \
    -label org.opencontainers.image.title=groundwork-controller \
    -label "org.opencontainers.image.description=Groundwork bare-metal operator (controller and edge daemon)" \
    -label org.opencontainers.image.licenses=Apache-2.0 >"$1/digest"
}
if (($# == 1)); then
  [[ ! -e "$1" ]] || gw_die "$1 exists"
  mkdir -p "$1"
  build "$1"
  out="$1"
else
  gw_cached image "$key" digest build
  out="$GW_CACHED"
fi
echo "$out/image.tar $(cat "$out/digest") $ref"
