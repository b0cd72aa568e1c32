#!/usr/bin/env bash
# Installs what a fresh machine lacks. Without arguments: what the main job
# (scripts/demo.sh) needs — iproute2 (ip with JSON output), a C toolchain
# for ring, and QEMU for the lab's vm backend. With --runtimes, also the
# container runtimes the tests and the benchmark drive: podman and runc,
# Debian's Docker engine, the CNI reference plugins. With --tests, those and
# the Rust lint components, dependency checkers and the Prometheus parser
# of scripts/test.sh.
# (The lab fetches its guest kernel and busybox itself, through apt-get
# download, into /var/cache/linkherd-lab.)
# Safe to run repeatedly; installs nothing that is already there.
set -euo pipefail

runtimes=0 tests=0
case "${1:-}" in
  "") ;;
  --runtimes) runtimes=1 ;;
  --tests) runtimes=1 tests=1 ;;
  *) echo "usage: setup.sh [--runtimes | --tests]" >&2; exit 2 ;;
esac

export PATH="$HOME/.cargo/bin:$PATH"
need=()
command -v ip >/dev/null 2>&1 && ip -j link show lo >/dev/null 2>&1 || need+=(iproute2)
command -v cc >/dev/null 2>&1 || need+=(gcc libc6-dev)
command -v qemu-system-x86_64 >/dev/null 2>&1 || need+=(qemu-system-x86)
if [ "$runtimes" = 1 ]; then
  # Container runtimes for the CNI tests (podman with runc; crun fails on
  # this kind of machine's hybrid cgroups), a busybox for their images, and
  # the CNI reference plugins the benchmark compares with.
  command -v podman >/dev/null 2>&1 || need+=(podman)
  command -v runc >/dev/null 2>&1 || need+=(runc)
  [ -x /bin/busybox ] || need+=(busybox-static)
  [ -x /usr/lib/cni/macvlan ] || need+=(containernetworking-plugins)
  # Docker's engine for the driver tests and the agent image (the tests
  # start dockerd themselves, with their own roots; nothing here starts
  # it), and util-linux's unshare/nsenter they start it with.
  [ -x /usr/sbin/dockerd ] && [ -x /usr/bin/docker ] || need+=(docker.io)
  command -v nsenter >/dev/null 2>&1 || need+=(util-linux)
fi
if [ "$tests" = 1 ]; then
  # The Prometheus text parser the /metrics test reads the agent's output
  # with (Debian's interpreter and module, not a user's python).
  /usr/bin/python3 -c 'import prometheus_client' >/dev/null 2>&1 || need+=(python3-prometheus-client)
  # systemd-analyze verifies the shipped unit (no running systemd needed).
  command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: missing packages ${need[*]}; install them as root" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: no Rust toolchain (cargo) on PATH; install one with rustup" >&2
  exit 1
fi
[ "$tests" = 1 ] || exit 0
for comp in rustfmt clippy; do
  if ! rustup component list --installed 2>/dev/null | grep -q "^$comp"; then
    rustup component add "$comp"
  fi
done
# The dependency checks in scripts/test.sh: unused dependencies
# (cargo-machete) and bans, licenses and sources (cargo-deny), built from
# their crates once and kept in ~/.cargo/bin.
for tool in cargo-machete cargo-deny; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "setup: building $tool (once)" >&2
    cargo install --locked --quiet "$tool"
  fi
done
