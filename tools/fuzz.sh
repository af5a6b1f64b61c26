#!/usr/bin/env bash
# Runs every Go fuzz target in the module, one at a time, for FUZZTIME each
# (Go allows -fuzz on one target in one package per invocation).
#
# Usage: tools/fuzz.sh [packages...]      (default ./...)
#        FUZZTIME=30s tools/fuzz.sh ./server/...
# Called by `make fuzz FUZZTIME=...`.
set -euo pipefail

GO="${GO:-go}"
FUZZTIME="${FUZZTIME:-10s}"
pkgs=("$@")
[[ ${#pkgs[@]} -gt 0 ]] || pkgs=(./...)

# `go test -list` prints, per package, the matching names and then a line
# "ok  <import path>  <time>" (or "?  <path>  [no test files]"); it builds all
# test binaries in parallel, so one call covers the whole module.
if ! listing="$("$GO" test -list '^Fuzz' "${pkgs[@]}" 2>&1)"; then
  printf '%s\n' "$listing" >&2
  echo "fuzz: 'go test -list' failed (see above)" >&2
  exit 1
fi

targets=() # "import/path Name"
pending=()
while IFS= read -r line; do
  if [[ "$line" =~ ^Fuzz[[:alnum:]_]*$ ]]; then
    pending+=("$line")
  elif [[ "$line" =~ ^ok[[:space:]]+([^[:space:]]+) ]]; then
    for name in "${pending[@]}"; do
      targets+=("${BASH_REMATCH[1]} $name")
    done
    pending=()
  fi
done <<<"$listing"

if [[ ${#targets[@]} -eq 0 ]]; then
  echo "fuzz: no Fuzz targets found in ${pkgs[*]}"
  exit 0
fi

echo "fuzz: ${#targets[@]} target(s), ${FUZZTIME} each"
failed=()
for t in "${targets[@]}"; do
  pkg="${t% *}"
  name="${t##* }"
  echo "=== fuzz $pkg $name"
  if ! "$GO" test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" "$pkg"; then
    failed+=("$pkg $name")
  fi
done

if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzz: ${#failed[@]} of ${#targets[@]} target(s) FAILED:" >&2
  printf '  %s\n' "${failed[@]}" >&2
  echo "fuzz: failing inputs are saved under the package's testdata/fuzz/<Name>/; commit them as regression seeds once fixed" >&2
  exit 1
fi
echo "fuzz: all ${#targets[@]} target(s) passed"
