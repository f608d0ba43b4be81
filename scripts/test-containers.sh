#!/usr/bin/env bash
# `make test-containers`, also run by the README's test command: both images built from the unmodified
# Dockerfiles with tiny test models, then checked running (tests/containers). Installs Debian's Docker engine,
# debootstrap and docker-compose when missing, starts dockerd when none answers (and fails, saying why, when
# it cannot), and makes local stand-ins for base images that cannot be pulled here. Leaves toonify:tf1 and
# toonify:torch tagged. The layer cache makes a second run quick; build caches stay out of the layers.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/venvs.sh
source scripts/venvs.sh
# shellcheck source=scripts/debs.sh
source scripts/debs.sh
# shellcheck source=scripts/containers/standins.sh
source scripts/containers/standins.sh
DOCKERD_LOG="${TOONIFY_DOCKERD_LOG:-/var/log/toonify-dockerd.log}"
CONTEXT="$STANDIN_CACHE/context"

fail() { echo "FAIL (container tests): $*" >&2; exit 1; }

ensure_dockerd() {
  docker info >/dev/null 2>&1 && return 0
  command -v dockerd >/dev/null || fail "no dockerd after installing docker.io"
  echo "== starting dockerd (log: $DOCKERD_LOG)"
  # No iptables or default bridge on these machines; user-defined networks and published ports still work.
  nohup dockerd --iptables=false --ip6tables=false --bridge=none >"$DOCKERD_LOG" 2>&1 &
  for _ in $(seq 60); do
    docker info >/dev/null 2>&1 && return 0
    kill -0 $! 2>/dev/null || break
    sleep 1
  done
  tail -15 "$DOCKERD_LOG" >&2
  fail "dockerd did not start (its log ends above); the images cannot be built or run without it"
}

# The repository's files (tracked and new, as git sees them) plus tiny test models in models/: the documented
# way to bake local weights, without touching a models/ folder that may hold the real ones.
make_context() {
  rm -rf "$CONTEXT" && mkdir -p "$CONTEXT"
  git ls-files -z --cached --others --exclude-standard | tar --null -T - --ignore-failed-read -cf - 2>/dev/null |
    tar -C "$CONTEXT" -xf -
  if [[ ! -s $STANDIN_CACHE/tiny-models/TINY-TEST-MODELS.txt ]]; then
    TF_CPP_MIN_LOG_LEVEL=2 .venv/tf1/bin/python -m stylegan2 make-tiny --out "$STANDIN_CACHE/tiny-models" >/dev/null
  fi
  cp "$STANDIN_CACHE"/tiny-models/*.pkl "$CONTEXT/models/"
}

build_image() {
  local tag=$1 dockerfile=$2 started=$SECONDS log="$STANDIN_CACHE/build-${1//:/-}.log"
  echo "== docker build $tag ($dockerfile; log: $log)"
  # the classic builder: RUN steps share the host network, the only way out of these machines
  DOCKER_BUILDKIT=0 docker build --network host -f "$CONTEXT/$dockerfile" -t "$tag" \
    --build-arg TOONIFY_MIN_MODEL_BYTES=10000 --build-arg TOONIFY_EXPECT_RESOLUTION=64 "$CONTEXT" >"$log" 2>&1 ||
    { tail -30 "$log" >&2; fail "docker build $tag failed (log above)"; }
  echo "   built $tag in $((SECONDS - started)) s"
}

started=$SECONDS
ensure_debs docker.io debootstrap docker-compose
ensure_venv tf1 "$PY37"
ensure_venv torch "$PY311"
ensure_dockerd
ensure_standins
make_context
build_image toonify:tf1 docker/tf1/Dockerfile
build_image toonify:torch docker/torch/Dockerfile
docker image prune -f >/dev/null  # the images these replaced; the cache of the current ones stays
docker image ls --format '   {{.Repository}}:{{.Tag}}  {{.Size}}' toonify
echo "== pytest tests/containers"
status=0
rm -rf "$STANDIN_CACHE/logs"  # each container's output, kept for a look after a failure
TOONIFY_COMPOSE_DIR="$CONTEXT" TOONIFY_CONTAINER_LOGS="$STANDIN_CACHE/logs" \
  .venv/torch/bin/python -m pytest -q -p no:cacheprovider tests/containers "$@" || status=1
echo "== container tests took $((SECONDS - started)) s"
exit $status
