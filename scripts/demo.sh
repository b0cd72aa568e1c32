#!/usr/bin/env bash
# The main job, end to end: a local lab of two hosts (no1 with NIC ens192,
# no2 with eth0), each a network namespace running a real linkherd-agent,
# driven by linkherdctl over mTLS, checked, and torn down. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

bash scripts/setup.sh
cargo build --workspace --bins --locked --quiet
exec target/debug/linkherd-lab demo --dir "${LAB_DIR:-target/lab-demo}" "$@"
