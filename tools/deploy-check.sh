#!/usr/bin/env bash
# make deploy-check: checks the deployment files of deploy/ with the tools
# that use them (see docs/ci.md):
#   1. systemd: `systemd-analyze verify` of deploy/systemd/ganeti-gateway.service
#      (any warning fails), and its `systemd-analyze security` exposure (at
#      most 2.0);
#   2. container: `buildah bud` of deploy/container/Containerfile around the
#      static binary (target prebuilt: no Go image to pull), the image's
#      config and file list, then with podman: `--help` in the image, and the
#      server itself started from the image until its HEALTHCHECK passes,
#      stopped with SIGTERM (exit 0), its state in the volume;
#   3. Kubernetes manifests and the example files: `go test ./deploy/`
#      (kubeconform against the committed schemas, the real loaders).
# A missing tool skips its check with a message, and fails it under CI=true.
# Storage for buildah and podman is a temporary directory, removed at the end.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"
GO="${GO:-go}"
BIN="$ROOT/bin/ganeti-gateway"
UNIT="deploy/systemd/ganeti-gateway.service"
UNIT_EXEC="/usr/local/bin/ganeti-gateway"
CONTAINERFILE="deploy/container/Containerfile"
IMAGE="localhost/ganeti-gateway:deploy-check"
CTR="ganeti-gateway-deploy-check"
# systemd-analyze security's overall exposure, times 10, that fails the check.
EXPOSURE_MAX=20

TMP="$(mktemp -d -t ganeti-gateway-deploy-check.XXXXXX)"
STORE=(--root "$TMP/storage" --runroot "$TMP/runroot" --storage-driver vfs)
SKIPPED=()

cleanup() {
  if command -v podman >/dev/null; then
    podman "${STORE[@]}" rm -f -a >/dev/null 2>&1 || true
    podman "${STORE[@]}" volume rm -f -a >/dev/null 2>&1 || true
  fi
  if command -v buildah >/dev/null; then
    buildah "${STORE[@]}" rm -a >/dev/null 2>&1 || true
  fi
  # Whatever the tools left mounted under TMP (shm of a container).
  local m
  for m in $(findmnt -rn -o TARGET 2>/dev/null | grep "^$TMP/" | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
  rm -rf "$TMP"
}
trap cleanup EXIT

fail() {
  echo "deploy-check: FAILED: $*" >&2
  exit 1
}

# have TOOL WHAT: true when TOOL is on PATH; otherwise skips WHAT, or fails
# under CI=true.
have() {
  if command -v "$1" >/dev/null; then
    return 0
  fi
  if [[ "${CI:-}" == true ]]; then
    fail "$1 is missing (needed for: $2); .ci/run installs it with apt-get"
  fi
  echo "deploy-check: SKIPPED $2: $1 is missing"
  SKIPPED+=("$2 ($1 missing)")
  return 1
}

section() { echo; echo "---- deploy-check: $*"; }

# ---------------------------------------------------------------- binary
section "static binary $BIN"
# The static, version-stamped binary of `make build` (go's cache makes a
# second build cheap).
make -C "$ROOT" --no-print-directory GO="$GO" bin/ganeti-gateway
ls -l "$BIN"

# Every GANETI_GATEWAY_* variable that deploy/ names is a flag's (a
# misspelled one would be ignored silently).
flags="$("$BIN" --help 2>&1 | sed -n 's/^  -\([a-z0-9-]*\).*/\1/p')" || true
[[ -n "$flags" ]] || fail "$BIN --help lists no flags"
for name in $(grep -rhoE 'GANETI_GATEWAY_[A-Z0-9_]+' deploy/ | sort -u); do
  flag="$(tr 'A-Z_' 'a-z-' <<<"${name#GANETI_GATEWAY_}")"
  grep -qx -- "$flag" <<<"$flags" || fail "deploy/ names $name, but there is no flag --$flag"
done
echo "settings named in deploy/: all are flags"

# ---------------------------------------------------------------- systemd
section "systemd unit $UNIT"
if have systemd-analyze "systemd unit check"; then
  # verify needs ExecStart's binary to exist: check a copy of the unit whose
  # ExecStart is the binary just built.
  grep -q "^ExecStart=$UNIT_EXEC " "$UNIT" || fail "$UNIT: ExecStart is not $UNIT_EXEC"
  mkdir -p "$TMP/systemd"
  sed "s#^ExecStart=$UNIT_EXEC #ExecStart=$BIN #" "$UNIT" >"$TMP/systemd/ganeti-gateway.service"
  out="$(systemd-analyze verify "$TMP/systemd/ganeti-gateway.service" 2>&1)" ||
    fail "systemd-analyze verify: $out"
  # verify only warns (exit 0) about unknown keys and bad values: fail on any output.
  [[ -z "$out" ]] || fail "systemd-analyze verify printed warnings:"$'\n'"$out"
  echo "systemd-analyze verify: ok"
  out="$(systemd-analyze security --offline=yes --threshold="$EXPOSURE_MAX" \
    "$TMP/systemd/ganeti-gateway.service" 2>&1)" ||
    fail "systemd-analyze security: exposure above $EXPOSURE_MAX/10:"$'\n'"$out"
  grep 'Overall exposure level' <<<"$out"
fi

# ---------------------------------------------------------------- container
section "container image $CONTAINERFILE"
if have buildah "container image build" && have podman "container image run"; then
  # A context of the binary alone: nothing else of the repository is needed.
  mkdir -p "$TMP/context/bin"
  cp "$BIN" "$TMP/context/bin/ganeti-gateway"
  buildah "${STORE[@]}" bud --isolation chroot --format docker --quiet \
    --target prebuilt -f "$ROOT/$CONTAINERFILE" -t "$IMAGE" "$TMP/context"

  # The image's config.
  config="$(buildah "${STORE[@]}" inspect --type image --format \
    'user={{.Docker.Config.User}} ports={{.Docker.Config.ExposedPorts}} volumes={{.Docker.Config.Volumes}} entrypoint={{.Docker.Config.Entrypoint}} healthcheck={{.Docker.Config.Healthcheck.Test}}' \
    "$IMAGE")"
  echo "image config: $config"
  want='user=65532:65532 ports=map[5080/tcp:{}] volumes=map[/var/lib/ganeti-gateway:{}] entrypoint=[/ganeti-gateway] healthcheck=[CMD /ganeti-gateway healthcheck]'
  [[ "$config" == "$want" ]] || fail "image config: got"$'\n'"  $config"$'\n'"want"$'\n'"  $want"

  # The image's files: the binary and the data dir owned by the server's user.
  ctr="$(buildah "${STORE[@]}" from --quiet "$IMAGE")"
  mnt="$(buildah "${STORE[@]}" mount "$ctr")"
  files="$(cd "$mnt" && find . -mindepth 1 -printf '%p %y %U:%G %m\n' | sort)"
  buildah "${STORE[@]}" umount "$ctr" >/dev/null
  buildah "${STORE[@]}" rm "$ctr" >/dev/null
  echo "image files:"; sed 's/^/  /' <<<"$files"
  grep -qx './ganeti-gateway f 0:0 755' <<<"$files" || fail "image: no executable /ganeti-gateway"
  grep -qx './var/lib/ganeti-gateway d 65532:65532 755' <<<"$files" ||
    fail "image: /var/lib/ganeti-gateway is not a directory owned by 65532:65532"
  others="$(grep -v -e '^./ganeti-gateway ' -e '^./var ' -e '^./var/lib ' -e '^./var/lib/ganeti-gateway ' <<<"$files" || true)"
  [[ -z "$others" ]] || fail "image: unexpected files:"$'\n'"$others"

  # podman: crun refuses this machine's hybrid cgroup hierarchy, runc runs
  # without cgroup setup; podman's default rlimits for root exceed the
  # hard limits here, and a container cannot raise them: ask for less.
  PODMAN=(podman "${STORE[@]}" --cgroup-manager cgroupfs --events-backend file)
  if command -v runc >/dev/null; then
    PODMAN+=(--runtime runc)
  fi
  # --log-level fatal: podman logs an error for each HEALTHCHECK timer it
  # cannot ask systemd for (there may be no systemd); `podman healthcheck
  # run` runs the check by hand. Its own errors ("Error: ...") still show.
  PODMAN+=(--log-level fatal)
  RUN_OPTS=(--network none --ulimit nofile=4096:4096 --ulimit nproc=4096:4096)

  out="$("${PODMAN[@]}" run --rm "${RUN_OPTS[@]}" "$IMAGE" version 2>&1)" ||
    fail "podman run $IMAGE version: exit status $?:"$'\n'"$out"
  grep -q '^ganeti-gateway ' <<<"$out" || fail "podman run $IMAGE version: no version:"$'\n'"$out"
  echo "podman run $IMAGE version: $(head -n1 <<<"$out")"

  # The server from the image, as restricted as statefulset.yaml's
  # securityContext (read-only root, no capabilities, no privilege gain):
  # healthy, then stopped by SIGTERM.
  "${PODMAN[@]}" run -d --name "$CTR" "${RUN_OPTS[@]}" \
    --read-only --read-only-tmpfs=false --cap-drop all --security-opt no-new-privileges \
    -v "$CTR:/var/lib/ganeti-gateway" "$IMAGE" >/dev/null
  healthy=0
  for _ in $(seq 1 60); do
    if "${PODMAN[@]}" healthcheck run "$CTR" >/dev/null 2>&1; then
      healthy=1
      break
    fi
    sleep 0.5
  done
  if [[ $healthy -ne 1 ]]; then
    "${PODMAN[@]}" logs "$CTR" 2>&1 | tail -n 20 || true
    fail "the server in the image did not become healthy in 30 s"
  fi
  echo "podman healthcheck run: healthy"
  "${PODMAN[@]}" stop -t 30 "$CTR" >/dev/null
  status="$("${PODMAN[@]}" inspect --format '{{.State.ExitCode}}' "$CTR")"
  if [[ "$status" != 0 ]]; then
    "${PODMAN[@]}" logs "$CTR" 2>&1 | tail -n 20 || true
    fail "the server in the image exited with status $status after SIGTERM, want 0"
  fi
  echo "podman stop (SIGTERM): exit status 0"
  vol="$("${PODMAN[@]}" volume inspect --format '{{.Mountpoint}}' "$CTR")"
  state="$(stat -c '%u:%g %a' "$vol/state.db" 2>/dev/null)" || fail "no state.db in the volume"
  [[ "$state" == "65532:65532 "* ]] || fail "state.db in the volume: owner and mode $state, want 65532:65532"
  echo "volume: state.db $state"
  "${PODMAN[@]}" rm "$CTR" >/dev/null
fi

# ---------------------------------------------------------------- Kubernetes
section "Kubernetes manifests and example files: go test ./deploy/"
"$GO" test -count=1 ./deploy/...

echo
if [[ ${#SKIPPED[@]} -gt 0 ]]; then
  echo "deploy-check: ok, but SKIPPED: ${SKIPPED[*]}"
else
  echo "deploy-check: ok"
fi
