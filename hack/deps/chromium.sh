#!/usr/bin/env bash
# Headless Chromium for the browser test (tests/tests/rack_view.rs); installs only when missing.
set -euo pipefail
if [[ -x /usr/bin/chromium ]]; then
  exit 0
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium
