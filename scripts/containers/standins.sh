# shellcheck shell=bash
# Sourced by test-containers.sh. Where no registry can be reached, makes local stand-ins for the base images
# the Dockerfiles name, tagged under those exact names, so the unmodified Dockerfiles build. A name that
# already resolves (a real pulled image, or a stand-in from an earlier run) is left alone. Every stand-in is
# labelled org.toonify.standin with what it stands in for.
#   Debian bookworm minbase (debootstrap, cached as a tarball) + pyenv's CPython  → python:3.7-slim-bullseye,
#                                                                                python:3.11-slim-bookworm
#   the same minbase with Debian's redis-server                                  → redis:7.2
#   empty files where TensorFlow's image holds CUDA 10.0 / cuDNN 7 (no GPU here) → tensorflow/tensorflow:1.15.5-gpu-py3
# The Python stand-ins carry this machine's CA bundle and pip settings (PyPI is reached through a proxy
# here) and its local wheels (the CPU build of torch, which pip prefers to the multi-GB CUDA one: same
# version, plus a local label). The real bases need none of that.

STANDIN_CACHE="${TOONIFY_STANDIN_CACHE:-/var/cache/toonify-standins}"
STANDIN_MIRROR="${TOONIFY_STANDIN_MIRROR:-http://deb.debian.org/debian}"
STANDIN_WHEELS="${TOONIFY_STANDIN_WHEELS:-/opt/wheels}"
# What the official slim images and redis need at run time; nothing a project wheel should lean on (no libgomp).
STANDIN_DEBS="ca-certificates,libssl3,libsqlite3-0,libffi8,libbz2-1.0,liblzma5,zlib1g,libreadline8,libncursesw6"
STANDIN_DEBS+=",libuuid1,libgdbm6,libexpat1,redis-server,redis-tools"
STANDIN_PATH="PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

# The debootstrapped root file system, made once and kept as a tarball.
standin_rootfs() {
  local tarball="$STANDIN_CACHE/bookworm-minbase.tar"
  if [[ ! -s $tarball ]]; then
    echo "== debootstrap bookworm minbase for the stand-in bases ($STANDIN_MIRROR)" >&2
    mkdir -p "$STANDIN_CACHE"
    rm -rf "$STANDIN_CACHE/rootfs"
    debootstrap --variant=minbase --include="$STANDIN_DEBS" bookworm "$STANDIN_CACHE/rootfs" "$STANDIN_MIRROR" \
      >"$STANDIN_CACHE/debootstrap.log" 2>&1 || { tail -20 "$STANDIN_CACHE/debootstrap.log" >&2; return 1; }
    rm -rf "$STANDIN_CACHE/rootfs/var/cache/apt/archives/"*.deb "$STANDIN_CACHE/rootfs/var/lib/apt/lists/"*
    tar -C "$STANDIN_CACHE/rootfs" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf "$STANDIN_CACHE/rootfs"
  fi
  echo "$tarball"
}

# tar of a staged tree → image TAG, with LABEL and any further --change arguments.
standin_import() {
  local stage=$1 tag=$2 what=$3
  shift 3
  tar -C "$stage" -c . | docker import --change "LABEL org.toonify.standin=\"$what\"" "$@" - "$tag" >/dev/null
  rm -rf "$stage"
  echo "== stand-in $tag: $what"
}

standin_python() {
  local tag=$1 version=$2 short=${2%.*} stage src
  have_image "$tag" && return 0
  src="${PYENV_ROOT:-$HOME/.pyenv}/versions/$version"
  [[ -x $src/bin/python$short ]] || { echo "no CPython $version at $src for the $tag stand-in" >&2; return 1; }
  stage=$(mktemp -d)
  tar -C "$stage" -xf "$(standin_rootfs)"
  # the interpreter and standard library without the tests or this machine's installed packages
  tar -C "$src" -c --exclude="./lib/python$short/test" --exclude="./lib/python$short/site-packages/*" . |
    tar -C "$stage/usr/local" -x
  cp /etc/ssl/certs/ca-certificates.crt "$stage/etc/ssl/certs/ca-certificates.crt"
  printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$stage/etc/pip.conf"
  if compgen -G "$STANDIN_WHEELS/*-cp${short/./}-*.whl" >/dev/null; then
    mkdir -p "$stage/opt/wheels"
    cp "$STANDIN_WHEELS"/*-cp"${short/./}"-*.whl "$stage/opt/wheels/"
    printf 'find-links = /opt/wheels\n' >>"$stage/etc/pip.conf"
  fi
  PIP_ROOT_USER_ACTION=ignore chroot "$stage" /bin/sh -c "ldconfig && python$short -m ensurepip --default-pip >/dev/null \
    && ln -sf python$short /usr/local/bin/python && ln -sf python$short /usr/local/bin/python3"
  standin_import "$stage" "$tag" "CPython $version on Debian bookworm minbase" \
    --change "ENV $STANDIN_PATH LANG=C.UTF-8" --change 'CMD ["python3"]'
}

standin_redis() {
  local tag=$1 stage
  have_image "$tag" && return 0
  stage=$(mktemp -d)
  tar -C "$stage" -xf "$(standin_rootfs)"
  mkdir -p "$stage/data"
  # The official image compiles protected mode off (other containers reach it on the compose network); so
  # does this entry point for Debian's build.
  # shellcheck disable=SC2016  # $1 and $@ belong to the script written
  printf '#!/bin/sh\n[ "$1" = redis-server ] && shift && set -- redis-server "$@" --protected-mode no\nexec "$@"\n' \
    >"$stage/usr/local/bin/docker-entrypoint.sh"
  chmod +x "$stage/usr/local/bin/docker-entrypoint.sh"
  standin_import "$stage" "$tag" "Debian bookworm redis-server" --change "ENV $STANDIN_PATH" \
    --change 'WORKDIR /data' --change 'ENTRYPOINT ["docker-entrypoint.sh"]' --change 'CMD ["redis-server"]'
}

# Only the paths docker/tf1/Dockerfile copies, as empty files: this machine has no GPU, so TensorFlow runs on
# the CPU here whatever they hold; on a GPU host the real image supplies the libraries.
standin_tensorflow_gpu() {
  local tag=$1 stage
  have_image "$tag" && return 0
  stage=$(mktemp -d)
  mkdir -p "$stage/usr/local/cuda-10.0/lib64" "$stage/usr/lib/x86_64-linux-gnu"
  echo "stand-in: no CUDA libraries (no GPU on the machine that built this)" \
    >"$stage/usr/local/cuda-10.0/lib64/STAND-IN.txt"
  : >"$stage/usr/lib/x86_64-linux-gnu/libcudnn.so.7.6.5"
  standin_import "$stage" "$tag" "empty CUDA 10.0 / cuDNN 7 paths"
}

ensure_standins() {
  standin_tensorflow_gpu tensorflow/tensorflow:1.15.5-gpu-py3
  standin_python python:3.7-slim-bullseye 3.7.16
  standin_python python:3.11-slim-bookworm 3.11.7
  standin_redis redis:7.2
}
