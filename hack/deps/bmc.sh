#!/usr/bin/env bash
# Idempotent installer for the BMC test peers used by `cargo test -p bmc`:
#   - ipmitool (Debian package) for the IPMI driver and cross-checks
#   - sushy-tools (Redfish emulator) and pyghmi (IPMI BMC simulator) from PyPI
#   - bcrypt (htpasswd files for the TLS + basic-auth emulator variant)
# The Python packages go into the virtual environment of hack/lib.sh (gw_python).
# Safe to run repeatedly; it only installs what is missing.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
gw_python  # pip installs go into the project's virtual environment

SUSHY_TOOLS_VERSION="${SUSHY_TOOLS_VERSION:-2.2.0}"
PYGHMI_VERSION="${PYGHMI_VERSION:-1.6.19}"
PYTHON="${PYTHON:-python3}"

need=()
command -v ipmitool >/dev/null 2>&1 || need+=(ipmitool)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
((${#need[@]} == 0)) || gw_apt_install "${need[@]}"

py_has() {
  "$PYTHON" - "$1" "$2" <<'PY' >/dev/null 2>&1
import sys
from importlib import metadata
dist, want = sys.argv[1], sys.argv[2]
sys.exit(0 if metadata.version(dist) == want else 1)
PY
}

pkgs=()
py_has sushy-tools "$SUSHY_TOOLS_VERSION" || pkgs+=("sushy-tools==$SUSHY_TOOLS_VERSION")
py_has pyghmi "$PYGHMI_VERSION" || pkgs+=("pyghmi==$PYGHMI_VERSION")
"$PYTHON" -c 'import bcrypt' >/dev/null 2>&1 || pkgs+=("bcrypt")
if ((${#pkgs[@]})); then
  echo "bmc.sh: pip install ${pkgs[*]}" >&2
  "$PYTHON" -m pip install --quiet --disable-pip-version-check "${pkgs[@]}"
fi

"$PYTHON" -c 'import sushy_tools.emulator.main, pyghmi.ipmi.bmc, bcrypt' 
command -v ipmitool >/dev/null
echo "bmc.sh: ok (ipmitool $(ipmitool -V | awk '{print $3}'), sushy-tools $SUSHY_TOOLS_VERSION, pyghmi $PYGHMI_VERSION)" >&2
