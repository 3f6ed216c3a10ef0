#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for SECONDS each, one at a time,
# and exits non-zero if any crashed. Crash inputs land in
# filter/fuzz/artifacts/<target>/; reproduce one with
#   cargo +nightly fuzz run --fuzz-dir filter/fuzz <target> filter/fuzz/artifacts/<target>/crash-…
#
# Usage: filter/fuzz/run.sh [SECONDS] [TARGET…]
#   FUZZ_MERGE=1       fold inputs with new coverage back into corpus/<target>
#   FUZZ_SANITIZER=    address (cargo-fuzz's default) or none (about 2x faster)
set -uo pipefail

secs=${1:-60}
shift || true
fuzz_dir=$(cd "$(dirname "$0")" && pwd)
cd "$fuzz_dir/../.."
fuzz=(--fuzz-dir filter/fuzz)

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list "${fuzz[@]}")
fi
sanitizer=(--sanitizer "${FUZZ_SANITIZER:-address}")

cargo +nightly fuzz build "${fuzz[@]}" "${sanitizer[@]}" || exit 2

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
failed=()
for t in "${targets[@]}"; do
    echo "=== fuzz $t for ${secs}s"
    mkdir -p "$scratch/$t" "filter/fuzz/corpus/$t"
    # New inputs go to the scratch directory (first), the committed corpus
    # only seeds the run.
    if ! cargo +nightly fuzz run "${fuzz[@]}" "${sanitizer[@]}" "$t" "$scratch/$t" "filter/fuzz/corpus/$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2560 \
        -dict="$fuzz_dir/dicts/json.dict" -print_final_stats=1; then
        failed+=("$t")
        continue
    fi
    if [ "${FUZZ_MERGE:-0}" = 1 ]; then
        cargo +nightly fuzz run "${fuzz[@]}" "${sanitizer[@]}" "$t" "filter/fuzz/corpus/$t" "$scratch/$t" -- -merge=1 \
            -timeout=10 -rss_limit_mb=2560
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz: crashes in ${failed[*]} (inputs under filter/fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz: ${#targets[@]} targets, ${secs}s each, no crash"
