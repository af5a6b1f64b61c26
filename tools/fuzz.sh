#!/usr/bin/env bash
# Fuzzes every Go fuzz target in the module for FUZZTIME each, one at a time.
#
# Usage: tools/fuzz.sh [packages...]      (default ./...)
#        FUZZTIME=30s tools/fuzz.sh ./internal/...
# Called by `make fuzz FUZZTIME=...`.
#
# `go test -fuzz` takes one target of one package per call and rebuilds the
# instrumented test binary each time; this script builds each package's
# instrumented binary once (`go test -c -fuzz`) and runs it once per target,
# as `go test` would: in the package's directory (so testdata/fuzz is the
# seed corpus and a failing input is written there) with the same cache of
# generated inputs ($GOCACHE/fuzz/<import path>).
#
# `make test` (plain `go test`) already replays every seed and every input
# under testdata/fuzz; this script is the fuzzing for time.
set -euo pipefail

GO="${GO:-go}"
FUZZTIME="${FUZZTIME:-10s}"
pkgs=("$@")
[[ ${#pkgs[@]} -gt 0 ]] || pkgs=(./...)

fuzzcache="$("$GO" env GOCACHE)/fuzz"
bindir="$(mktemp -d "${TMPDIR:-/tmp}/fuzz-bin.XXXXXX")"
trap 'rm -rf "$bindir"' EXIT

# Packages whose test files declare a func(*testing.F): cheap (no build);
# the binary itself then lists its exact Fuzz targets.
listing="$("$GO" list -f '{{.ImportPath}} {{.Dir}}{{range .TestGoFiles}} {{.}}{{end}}{{range .XTestGoFiles}} {{.}}{{end}}' "${pkgs[@]}")"
candidates=() # "import/path dir"
while read -r path dir files; do
  for f in $files; do
    if grep -qE '^func Fuzz[[:alnum:]_]*\([[:alnum:]_]+ \*testing\.F\)' "$dir/$f"; then
      candidates+=("$path $dir")
      break
    fi
  done
done <<<"$listing"

targets=() # "import/path dir binary Name"
for c in "${candidates[@]}"; do
  path="${c% *}"
  dir="${c#* }"
  bin="$bindir/${path//\//_}.test"
  echo "=== build $path"
  # -fuzz selects the instrumented build; the pattern does not matter with -c.
  "$GO" test -c -fuzz '^Fuzz' -o "$bin" "$path"
  names="$(cd "$dir" && "$bin" -test.list '^Fuzz')"
  while IFS= read -r name; do
    if [[ "$name" =~ ^Fuzz[[:alnum:]_]*$ ]]; then
      targets+=("$path $dir $bin $name")
    fi
  done <<<"$names"
done

if [[ ${#targets[@]} -eq 0 ]]; then
  echo "fuzz: no Fuzz targets found in ${pkgs[*]}"
  exit 0
fi

echo "fuzz: ${#targets[@]} target(s) in ${#candidates[@]} package(s), ${FUZZTIME} each"
failed=()
flakes=()
for t in "${targets[@]}"; do
  read -r path dir bin name <<<"$t"
  echo "=== fuzz $path $name"
  # Go 1.26's fuzzing coordinator can end a clean run with a bare "context
  # deadline exceeded" when -fuzztime runs out while a worker is busy
  # (golang/go#75804, fixed in Go 1.27): nothing crashed and no input is
  # saved. A real finding always writes its input, so only a failure that
  # wrote one (or any other failure) counts; the flake is retried once and
  # then reported as a flake.
  for attempt in 1 2; do
    out=$(mktemp)
    rc=0
    (cd "$dir" && "$bin" -test.run '^$' -test.fuzz "^${name}\$" -test.fuzztime "$FUZZTIME" \
      -test.fuzzcachedir "$fuzzcache/$path" -test.paniconexit0) 2>&1 | tee "$out" || rc=$?
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
      flakes+=("$path $name")
      break
    else
      failed+=("$path $name")
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
