#!/usr/bin/env bash
# Endpoint create/delete throughput (linkherd's API and transactions against
# ip -batch and the CNI reference macvlan plugin, in the same run), Watch
# latency and the agent's memory. Release build. Needs root. --json for scripts.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
bash scripts/setup.sh --runtimes
# The memory figure is of the agent binary, run as its own process.
cargo build --release --locked --quiet -p linkherd-lab --bin linkherd-bench \
  -p linkherd-agent --bin linkherd-agent -p linkherd-cni --bin linkherd-cni
exec target/release/linkherd-bench "$@"
