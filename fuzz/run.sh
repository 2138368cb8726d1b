#!/usr/bin/env bash
# Runs every fuzz target for <seconds> each; exits non-zero if any target
# crashes (panic, sanitizer report, timeout or out-of-memory).
#
#   fuzz/run.sh 60
#
# Installs cargo-fuzz if it is missing. AddressSanitizer needs `-Zsanitizer`,
# which the stable toolchain allows with RUSTC_BOOTSTRAP=1 (set here); set
# FUZZ_SANITIZER=none to build without it (about 10x more executions, fewer
# bugs found). Crash inputs land in fuzz/artifacts/<target>/; the growing
# corpus in fuzz/corpus/<target>/ (both ignored by git).
set -uo pipefail

secs=${1:?usage: fuzz/run.sh <seconds per target>}
sanitizer=${FUZZ_SANITIZER:-address}
cd "$(dirname "$0")"

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --version '^0.13' --locked || exit 2
fi
export RUSTC_BOOTSTRAP=1

status=0
for target in pickle_vm model_file jpeg png; do
    mkdir -p "corpus/$target"
    echo "== $target: $secs s (sanitizer: $sanitizer)"
    if ! cargo fuzz run --sanitizer "$sanitizer" "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1; then
        echo "== $target: CRASH (inputs in fuzz/artifacts/$target/)" >&2
        status=1
    fi
done
exit $status
