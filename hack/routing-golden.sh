#!/usr/bin/env bash
# Regenerates the routing crate's golden BIRD configurations
# (routing/tests/golden/*.conf) from the *.json inputs beside them.
# The tests only ever compare against these files; review the diff before committing.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$GW_ROOT"
cargo run -q -p routing --example render_golden
git --no-pager diff --stat -- routing/tests/golden || true
