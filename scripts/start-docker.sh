#!/usr/bin/env bash
# Makes a Docker daemon answer, idempotently: installs Debian's engine and the image tools when
# missing (docker.io, docker-compose v1, mmdebstrap, zstd), starts dockerd in the background
# when `docker info` fails (there is no systemd), and waits up to 30 s for it to answer.
# Exits 0 when the daemon answers, 1 otherwise. The daemon log goes to $DOCKERD_LOG.
set -euo pipefail
log() { printf '[start-docker] %s\n' "$*" >&2; }
docker_bin=/usr/bin/docker
dockerd_log="${DOCKERD_LOG:-/tmp/dockerd.log}"
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

need_apt=()
for pkg in docker.io docker-compose mmdebstrap zstd; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  log "apt-get install ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if "$docker_bin" info >/dev/null 2>&1; then
  log "daemon already answers"
  exit 0
fi

if ! pgrep -x dockerd >/dev/null 2>&1; then
  log "starting dockerd (log: $dockerd_log)"
  $SUDO sh -c "nohup dockerd >'$dockerd_log' 2>&1 &"
fi

deadline=$((SECONDS + 30))
while [ $SECONDS -lt $deadline ]; do
  if "$docker_bin" info >/dev/null 2>&1; then
    log "daemon ready"
    exit 0
  fi
  sleep 0.2
done
log "dockerd did not answer within 30 s; last lines of $dockerd_log:"
tail -n 20 "$dockerd_log" >&2 || true
exit 1
