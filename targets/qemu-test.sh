#!/usr/bin/env bash
# Run the kernels' and runtime's tests under qemu-user: targets/qemu-test.sh <triple> [QEMU_CPU]
set -euo pipefail
cd "$(dirname "$0")/.."
triple=${1:?usage: targets/qemu-test.sh <aarch64-unknown-linux-gnu|armv7-unknown-linux-gnueabihf> [QEMU_CPU]}
if [ -n "${2:-}" ]; then export QEMU_CPU=$2; fi
cargo test --release --target "$triple" -p edgedetr-kernels -p edgedetr -p edgedetr-format --features edgedetr-format/alloc
