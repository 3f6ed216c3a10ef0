#!/usr/bin/env bash
# Re-fetches the vendored Chart.js from the npm registry (npm's own client,
# which checks the tarball against the registry's sha512 integrity) and
# checks that the two vendored files are exactly those bytes: the pinned
# sha256 below, of the registry's files, and of the files in the repository.
#   control-plane/dashboard/vendor/fetch.sh           verify (make dashboard-vendor)
#   control-plane/dashboard/vendor/fetch.sh --update  write the fetched files here
# To move to another version: change VERSION, run with --update, put the new
# sums below, rename the file in control-plane/src/dashboard.rs.
set -euo pipefail

VERSION=4.6.1
MIN_SHA256=87364cc2b2a76a6684929e7d6b80b18a897794db38400caff1fcf1791c6925d2
LICENSE_SHA256=41a84aa2caba645f966a18d9c2056b73e6d3a81d80bc0046bc0011a2634d4cce

here=$(cd "$(dirname "$0")" && pwd)
min="chart-$VERSION.umd.min.js"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

(cd "$work" && npm pack --silent "chart.js@$VERSION" >/dev/null && tar xzf "chart.js-$VERSION.tgz")
fetched_min="$work/package/dist/chart.umd.min.js"
fetched_license="$work/package/LICENSE.md"

check() { # file, expected sha256, what
    local got
    got=$(sha256sum "$1" | cut -d' ' -f1)
    if [[ "$got" != "$2" ]]; then
        echo "fetch.sh: $3: sha256 $got, expected $2" >&2
        exit 1
    fi
}
check "$fetched_min" "$MIN_SHA256" "chart.js@$VERSION dist/chart.umd.min.js from the registry"
check "$fetched_license" "$LICENSE_SHA256" "chart.js@$VERSION LICENSE.md from the registry"

if [[ "${1:-}" == "--update" ]]; then
    cp "$fetched_min" "$here/$min"
    cp "$fetched_license" "$here/chart.js-LICENSE.md"
fi
check "$here/$min" "$MIN_SHA256" "vendored $min"
check "$here/chart.js-LICENSE.md" "$LICENSE_SHA256" "vendored chart.js-LICENSE.md"
echo "fetch.sh: the vendored Chart.js $VERSION is the registry's, byte for byte"
