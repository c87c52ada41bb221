#!/usr/bin/env bash
# Fetches the console's vendored front-end files from npm, checks them, and
# copies them into place. Nothing runs at build or run time: the files are
# committed and embedded with go:embed. To move to a new version, change the
# versions below, run this script from anywhere, then update VERSIONS.md and
# the sha256 list in web/vendor_test.go with the sums it prints
# (go test ./web/ names any file whose sum no longer matches).
#
# Needs npm (only to fetch: `npm pack` downloads a package's tarball and
# installs nothing), tar, sha256sum, openssl.
set -euo pipefail

HTMX=2.0.11      # htmx.org, latest 2.0.x
UPLOT=1.6.32     # uplot, latest 1.6.x
AXE=4.14.1       # axe-core, latest 4.x; only the browser tests load it

web="$(cd "$(dirname "$0")/../.." && pwd)"
vendor="$web/static/vendor"
testdata="$web/../internal/browsertest/testdata"
scratch="${SCRATCH:-$(mktemp -d /tmp/webvendor.XXXXXX)}"
mkdir -p "$scratch"
cd "$scratch"

fetch() { # fetch NAME VERSION: npm pack it, check it against the registry's integrity, unpack to x/NAME
  local name=$1 version=$2 tgz want got
  tgz=$(npm pack --silent "$name@$version")
  want=$(npm view "$name@$version" dist.integrity)
  got="sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)"
  if [ "$want" != "$got" ]; then
    echo "$name@$version: tarball integrity $got, registry says $want" >&2
    exit 1
  fi
  echo "$name@$version $(npm view "$name@$version" license) $want"
  rm -rf "x/$name"; mkdir -p "x/$name"
  tar -xzf "$tgz" -C "x/$name"
}

fetch htmx.org "$HTMX"
fetch uplot "$UPLOT"
fetch axe-core "$AXE"

cp x/htmx.org/package/dist/htmx.min.js "$vendor/htmx.min.js"
cp x/htmx.org/package/LICENSE "$vendor/LICENSE.htmx.txt"
cp x/uplot/package/dist/uPlot.iife.min.js x/uplot/package/dist/uPlot.min.css "$vendor/"
cp x/uplot/package/LICENSE "$vendor/LICENSE.uplot.txt"
cp x/axe-core/package/axe.min.js "$testdata/axe.min.js"
cp x/axe-core/package/LICENSE "$testdata/LICENSE.axe-core.txt"
cp x/axe-core/package/LICENSE-3RD-PARTY.txt "$testdata/LICENSE-3RD-PARTY.axe-core.txt"

cd "$web"
sha256sum static/vendor/htmx.min.js static/vendor/uPlot.iife.min.js static/vendor/uPlot.min.css \
  static/vendor/LICENSE.htmx.txt static/vendor/LICENSE.uplot.txt \
  ../internal/browsertest/testdata/axe.min.js ../internal/browsertest/testdata/LICENSE.axe-core.txt \
  ../internal/browsertest/testdata/LICENSE-3RD-PARTY.axe-core.txt
