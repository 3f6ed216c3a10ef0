#!/usr/bin/env bash
# The suites that start no Envoy, run with the clock 400 days ahead
# (libfaketime), so a test that depends on today's date — a scheduled price
# change, retirement or entry into service passing under it — fails now,
# not on the day. Envoy hangs under libfaketime, so the Envoy suites route
# with an undated catalog instead (tests/README.md, "How the tests are
# built"). Run by `make test`; `make future` alone.
set -euo pipefail
cd "$(dirname "$0")/.."
AHEAD="${AIPIPE_FUTURE:-+400d}"
# The test executables cargo builds for these packages, found from its JSON
# messages (cargo itself is not run under the fake clock).
mapfile -t bins < <(
  cargo test --no-run --message-format=json \
    -p aipipe-core -p aipipe-control-plane -p aipipe-tools -p aipipe-native 2>/dev/null |
    python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("profile", {}).get("test") and m.get("executable"):
        print(m["executable"] + "\t" + m["manifest_path"])
')
status=0
for entry in "${bins[@]}"; do
  bin="${entry%%$'\t'*}"
  dir="$(dirname "${entry#*$'\t'}")"
  if ! (cd "$dir" && faketime -f "$AHEAD" "$bin" -q >"/tmp/future-$$.log" 2>&1); then
    echo "future: $(basename "$bin") fails with the clock $AHEAD:"
    grep -E "^test .* FAILED|panicked" "/tmp/future-$$.log" | head -20
    status=1
  fi
done
rm -f "/tmp/future-$$.log"
[ "$status" = 0 ] && echo "future: ${#bins[@]} test executables pass with the clock $AHEAD"
exit "$status"
