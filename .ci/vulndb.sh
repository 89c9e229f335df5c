#!/usr/bin/env bash
# Usage: .ci/vulndb.sh OUTDIR
#
# Builds the Go vulnerability database that govulncheck reads with
# -db file://OUTDIR, without reaching its usual server: the reports come from
# the pinned golang.org/x/vulndb module (its data/osv/*.json) and the index
# (index/db.json, index/modules.json, ID/<id>.json) is written by that
# module's own cmd/indexdb. Only the Go module proxy is used.
#
# To pick up newer reports, move VULNDB to a newer pseudo-version of
# golang.org/x/vulndb.
set -euo pipefail

VULNDB=golang.org/x/vulndb@v0.0.0-20261105234957-e22db6528018

out=${1:?usage: $0 OUTDIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)

# Outside our module, so that nothing touches go.mod or go.sum.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
go mod download "$VULNDB"
src="$(go env GOMODCACHE)/${VULNDB}"
go run "golang.org/x/vulndb/cmd/indexdb@${VULNDB#*@}" -vulns "$src/data/osv" -out "$out"
test -s "$out/index/modules.json"
echo "vulndb: $(ls "$src/data/osv" | wc -l) reports from $VULNDB in $out"
