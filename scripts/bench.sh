#!/usr/bin/env bash
# Endpoint create/delete throughput: linkherd's API against ip -batch and the
# CNI reference macvlan plugin, in the same run. Release build. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
bash scripts/setup.sh
command -v /usr/lib/cni/macvlan >/dev/null 2>&1 || \
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends containernetworking-plugins
cargo build --release --locked --quiet -p linkherd-lab --bin linkherd-bench
exec target/release/linkherd-bench "$@"
