#!/usr/bin/env bash
# Headless Chromium for the browser test (tests/tests/rack_view.rs); installs only when missing.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
[[ -x /usr/bin/chromium ]] || gw_apt_install chromium
