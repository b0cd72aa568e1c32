#!/usr/bin/env bash
# Builds the agent's container image (deploy/image/Dockerfile) from the
# static agent, on the Docker engine the docker client talks to
# (DOCKER_HOST): scripts/build-image.sh [TAG], default linkherd/agent:VERSION.
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
tag=${1:-linkherd/agent:$version}
bash scripts/build-guest-agent.sh
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp deploy/image/Dockerfile target/guest/x86_64-unknown-linux-gnu/release/linkherd-agent "$ctx/"
docker build -q -t "$tag" "$ctx"
echo "built $tag"
