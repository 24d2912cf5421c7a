#!/usr/bin/env bash
# Assembles the controller image's root filesystem in DIR (created; must not exist) from BINDIR's
# static groundwork-controller and groundwork-edge and from the Debian packages installed here:
# ipmitool and exactly the shared libraries it loads (the IPMI driver runs it, as Ironic does),
# BIRD's daemon binary and its libraries (the edge daemon checks a configuration with `bird -p`
# before it hands it to the BIRD running on the border router),
# Debian's iPXE binaries (at /usr/lib/ipxe, the controller's default --ipxe-dir), the CA bundle,
# and passwd/group entries for the non-root user 65532. No shell, no package manager.
#
#   hack/image/rootfs.sh DIR BINDIR
#
# One list for both ways to build the image: hack/image/build.sh (no container engine) and the
# Containerfile's rootfs stage run this same script, so both images hold the same files.
# Needs bash, coreutils, ldd (libc-bin), setcap (libcap2-bin) and the packages ipmitool, bird2,
# ipxe, ca-certificates.
set -euo pipefail
(($# == 2)) || { echo "usage: $0 DIR BINDIR" >&2; exit 2; }
dir="$1" bindir="$2"
die() { echo "rootfs.sh: $*" >&2; exit 1; }
[[ ! -e "$dir" ]] || die "$dir exists"
for f in /usr/sbin/setcap /usr/bin/ipmitool /usr/sbin/bird /usr/lib/ipxe/undionly.kpxe /usr/lib/ipxe/ipxe.efi /etc/ssl/certs/ca-certificates.crt; do
  [[ -e "$f" ]] || die "$f missing (install libcap2-bin, ipmitool, bird2, ipxe and ca-certificates)"
done

# FILE keeps its path in the image; symlinks in it are resolved (the image holds plain files).
put() {
  install -D -m "$2" "$(readlink -f "$1")" "$dir$1"
}

mkdir -p "$dir"
for b in groundwork-controller groundwork-edge; do
  [[ -x "$bindir/$b" ]] || die "$bindir/$b missing"
  case "$(file -bL "$bindir/$b")" in
    *"statically linked"* | *static-pie*) ;;
    *) die "$bindir/$b is not statically linked" ;;
  esac
  install -D -m 0755 "$bindir/$b" "$dir/usr/local/bin/$b"
done
# The boot services bind ports 67/69 and sockets to interfaces as UID 65532: the controller
# carries CAP_NET_BIND_SERVICE and CAP_NET_RAW as permitted file capabilities and raises them
# itself (permitted only: where a Pod grants neither, the binary still starts).
setcap cap_net_bind_service,cap_net_raw=p "$dir/usr/local/bin/groundwork-controller"

put /usr/bin/ipmitool 0755
put /usr/sbin/bird 0755
# The loader and every library ldd resolves, at the paths the loader looks them up by.
while read -r lib; do
  put "$lib" 0644
done < <(for b in /usr/bin/ipmitool /usr/sbin/bird; do ldd "$b"; done | grep -o '/[^ ]*' | sort -u)
chmod 0755 "$dir"/lib64/ld-linux-x86-64.so.2

put /usr/lib/ipxe/undionly.kpxe 0644
put /usr/lib/ipxe/ipxe.efi 0644
put /etc/ssl/certs/ca-certificates.crt 0644

install -d -m 0755 "$dir/etc"
printf '%s\n' 'root:x:0:0:root:/root:/usr/sbin/nologin' \
  'groundwork:x:65532:65532:groundwork:/nonexistent:/usr/sbin/nologin' >"$dir/etc/passwd"
printf '%s\n' 'root:x:0:' 'groundwork:x:65532:' >"$dir/etc/group"
chmod 0644 "$dir/etc/passwd" "$dir/etc/group"
# Directories exactly 0755 whatever the umask (part of the image's bytes).
find "$dir" -type d -exec chmod 0755 {} +
