#!/usr/bin/env bash
# The main job, end to end: a local lab of two hosts (no1 with NIC ens192,
# no2 with eth0), each running a real linkherd-agent, driven by linkherdctl
# over mTLS: interfaces and promiscuous mode, the document's flat macvlan
# network across hosts (network namespaces), then its VLAN 10/20 scenario
# (QEMU guests when this kernel lacks 802.1Q); every step checked, everything
# torn down. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

bash scripts/setup.sh
cargo build --workspace --bins --locked --quiet
bash scripts/build-guest-agent.sh
exec target/debug/linkherd-lab demo --dir "${LAB_DIR:-target/lab-demo}" "$@"
