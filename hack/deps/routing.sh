#!/usr/bin/env bash
# Installs the real BGP speakers and network tools that the `routing` crate's
# integration tests and benchmark start in network namespaces.
# Idempotent: only calls apt-get when a binary is missing.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

need=()
have() { gw_have "$1" || [ -x "/usr/lib/frr/$1" ]; }
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

# policy-rc.d-less containers may start the daemons: the tests start their own instances.
gw_apt_install "${need[@]}"
gw_disable_services bird frr gobgpd
echo "routing deps: done"
