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
flakes=()
for t in "${targets[@]}"; do
  pkg="${t% *}"
  name="${t##* }"
  echo "=== fuzz $pkg $name"
  # Go 1.26's fuzzing coordinator can end a clean run with a bare "context
  # deadline exceeded" when -fuzztime runs out while a worker is busy
  # (golang/go#75804, fixed in Go 1.27): nothing crashed and no input is
  # saved. A real finding always writes its input, so only a failure that
  # wrote one (or any other failure) counts; the flake is retried once and
  # then reported as a flake.
  for attempt in 1 2; do
    out=$(mktemp)
    rc=0
    "$GO" test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" "$pkg" 2>&1 | tee "$out" || rc=$?
    flake=0
    if [[ $rc -ne 0 ]] && grep -q '^    context deadline exceeded$' "$out" && ! grep -q 'Failing input written to' "$out"; then
      flake=1
    fi
    rm -f "$out"
    if [[ $rc -eq 0 ]]; then
      break
    elif [[ $flake -eq 1 && $attempt -eq 1 ]]; then
      echo "fuzz: $name hit the Go fuzzing-engine deadline flake (golang/go#75804, no failing input); retrying"
    elif [[ $flake -eq 1 ]]; then
      echo "fuzz: $name hit the deadline flake twice; no failing input was written, counted as passed"
      flakes+=("$pkg $name")
      break
    else
      failed+=("$pkg $name")
      break
    fi
  done
done

if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzz: ${#failed[@]} of ${#targets[@]} target(s) FAILED:" >&2
  printf '  %s\n' "${failed[@]}" >&2
  echo "fuzz: failing inputs are saved under the package's testdata/fuzz/<Name>/; commit them as regression seeds once fixed" >&2
  exit 1
fi
echo "fuzz: all ${#targets[@]} target(s) passed"
