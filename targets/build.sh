#!/usr/bin/env bash
# Build the `edgedetr` CLI for a board profile: targets/build.sh <board> [--musl]
set -euo pipefail
cd "$(dirname "$0")/.."
board=${1:?usage: targets/build.sh <pi4|pi5|jetson-nano|jetson-orin|pi-armv7|x86_64> [--musl]}
musl=${2:-}
case "$board" in
  pi4) triple=aarch64-unknown-linux-gnu; cpu=cortex-a72 ;;
  pi5) triple=aarch64-unknown-linux-gnu; cpu=cortex-a76 ;;
  jetson-nano) triple=aarch64-unknown-linux-gnu; cpu=cortex-a57 ;;
  jetson-orin) triple=aarch64-unknown-linux-gnu; cpu=cortex-a78 ;;
  pi-armv7) triple=armv7-unknown-linux-gnueabihf; cpu=cortex-a72 ;;
  x86_64) triple=x86_64-unknown-linux-gnu; cpu=x86-64-v2 ;;
  *) echo "unknown board $board" >&2; exit 2 ;;
esac
if [ "$musl" = "--musl" ]; then
  triple=${triple/gnu/musl}
  export CC_aarch64_unknown_linux_musl=aarch64-linux-gnu-gcc
fi
# The `dist` profile: release code, no debug info, stripped (see Cargo.toml).
RUSTFLAGS="${RUSTFLAGS:-} -C target-cpu=$cpu" cargo build --profile dist -p edgedetr-cli --target "$triple"
out="${CARGO_TARGET_DIR:-target}/$triple/dist/edgedetr"
echo "built $out for $board ($cpu), $(wc -c < "$out") bytes"
