#!/usr/bin/env bash
# Installs the real BGP speakers and network tools that the `routing` crate's
# integration tests and benchmark start in network namespaces.
# Idempotent: only calls apt-get when a binary is missing.
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/lib/frr/$1" ]; }
have bird    || need+=(bird2)
have birdc   || need+=(bird2)
have gobgpd  || need+=(gobgpd)
have gobgp   || need+=(gobgpd)
have bgpd    || need+=(frr)
have bfdd    || need+=(frr)
have vtysh   || need+=(frr)
have nft     || need+=(nftables)
have ip      || need+=(iproute2)

if [ ${#need[@]} -eq 0 ]; then
  echo "routing deps: all present"
  exit 0
fi

# Unique list.
mapfile -t pkgs < <(printf '%s\n' "${need[@]}" | sort -u)
echo "routing deps: installing ${pkgs[*]}"
export DEBIAN_FRONTEND=noninteractive
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
# --no-install-recommends keeps it small; policy-rc.d-less containers may try to start
# the daemons: we stop them below, the tests start their own instances.
$SUDO apt-get install -y -qq --no-install-recommends "${pkgs[@]}"

# The packages' system services are not used by the tests.
for svc in bird frr gobgpd; do
  if command -v systemctl >/dev/null 2>&1; then
    $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || true
  fi
done
echo "routing deps: done"
