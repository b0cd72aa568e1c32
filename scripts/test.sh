#!/usr/bin/env bash
# Runs every test tier: formatting and lints, unit tests (T0), the gRPC stack
# over the fake kernel (T1), the kernel contract and services in private
# network namespaces (T2, root), the two-host lab in namespaces (T3, root) and
# in QEMU guests with real 802.1Q (T4, root). As root, no root test may skip.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

bash scripts/setup.sh --tests
if [ "$(id -u)" = 0 ]; then
  export LINKHERD_REQUIRE_ROOT=1
else
  echo "test: not root: the kernel tiers (T2, T3) will be skipped; run as root for all tests" >&2
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The code's shape: no import cycles between sibling modules, no function
# over 80 lines outside tests, no unused dependency, only allowed licenses
# and sources, no "*" versions.
python3 scripts/check-module-cycles.py proto/src agent/src ctl/src cni/src lab/src test-support/src
python3 scripts/check-function-length.py proto/src agent/src ctl/src cni/src lab/src test-support/src
cargo machete
cargo deny --log-level error check bans licenses sources
# The lab and end-to-end tests run the real binaries; the QEMU guests a
# static agent.
cargo build --workspace --bins --locked
bash scripts/build-guest-agent.sh
cargo test --workspace --locked
# The benchmark at a small size, so that it cannot rot: it must run to its
# end; its figures belong to full runs (scripts/bench.sh), never to a test.
if [ "$(id -u)" = 0 ]; then
  target/debug/linkherd-bench --count 10
fi
