#!/usr/bin/env bash
# Builds the statically linked agent and CNI plugin that the lab's QEMU
# guests run (target/guest/x86_64-unknown-linux-gnu/release/linkherd-agent
# and linkherd-cni, stripped).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
RUSTFLAGS="-C target-feature=+crt-static -C strip=symbols" cargo build --release --locked --quiet \
  --target x86_64-unknown-linux-gnu --target-dir target/guest -p linkherd-agent --bin linkherd-agent -p linkherd-cni --bin linkherd-cni
