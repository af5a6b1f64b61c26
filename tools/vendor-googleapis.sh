#!/usr/bin/env bash
# Copies the few googleapis .proto files this project imports from the npm
# package google-proto-files (pinned in package.json / package-lock.json) into
# third_party/googleapis, which buf.yaml lists as a local module. No BSR, no
# network at generate time.
#
# Idempotent: unchanged files are left alone (mtime kept), changed ones are
# overwritten, and .proto files under third_party/googleapis that are not in
# FILES below are removed, so the tree always holds exactly this list.
#
# To vendor another file: add it to FILES (with whatever it imports, except
# google/protobuf/*, which buf embeds) and run `make vendor`.
#
# Usage: tools/vendor-googleapis.sh            (from anywhere in the repo)
#        SRC=/path/to/google-proto-files tools/vendor-googleapis.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC="${SRC:-$ROOT/node_modules/google-proto-files}"
DST="$ROOT/third_party/googleapis"

FILES=(
  google/api/annotations.proto
  google/api/http.proto
  google/api/httpbody.proto
  google/api/field_behavior.proto
  google/rpc/status.proto
  google/rpc/error_details.proto
  google/rpc/code.proto
)

if [[ ! -d "$SRC/google" ]]; then
  echo "vendor-googleapis: $SRC not found; run 'npm ci' first" >&2
  exit 1
fi

changed=0
copy() { # copy SRC-relative file $1 to DST-relative $2 if it differs
  local from="$SRC/$1" to="$DST/$2"
  if [[ ! -f "$from" ]]; then
    echo "vendor-googleapis: missing in google-proto-files: $1" >&2
    exit 1
  fi
  if [[ -f "$to" ]] && cmp -s "$from" "$to"; then
    return
  fi
  mkdir -p "$(dirname "$to")"
  cp "$from" "$to"
  chmod 0644 "$to"
  echo "vendor-googleapis: updated $2"
  changed=1
}

for f in "${FILES[@]}"; do
  copy "$f" "$f"
done
# Apache-2.0: redistributed files travel with their licence.
copy LICENSE LICENSE

# Remove .proto files that are no longer in the list.
declare -A want=()
for f in "${FILES[@]}"; do want["$f"]=1; done
while IFS= read -r -d '' p; do
  rel="${p#"$DST"/}"
  if [[ -z "${want[$rel]:-}" ]]; then
    rm -f "$p"
    echo "vendor-googleapis: removed $rel (not in FILES)"
    changed=1
  fi
done < <(find "$DST" -type f -name '*.proto' -print0)
find "$DST" -mindepth 1 -type d -empty -delete

version="$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$SRC/package.json" | head -n1)"
if [[ "$changed" == 0 ]]; then
  echo "vendor-googleapis: third_party/googleapis up to date (google-proto-files $version, ${#FILES[@]} files)"
else
  echo "vendor-googleapis: done (google-proto-files $version, ${#FILES[@]} files)"
fi
