#!/usr/bin/env bash
# Build pgtender's image from deployments/Dockerfile on a machine with Docker but no image registry
# and no package index inside `docker build` (what was run here, deployments/README.md):
#
#   1. the base image: Debian's own Python, made with mmdebstrap from Debian's packages and
#      `docker import`ed (passed to the Dockerfile's PYTHON_IMAGE);
#   2. a wheelhouse on the host: every pin of deployments/constraints.txt and build-constraints.txt,
#      for the base image's Python and C library (pip download, binary wheels only);
#   3. `docker build` with WHEELHOUSE=/wheelhouse: pip installs with no index.
#
# Each step is skipped when its result exists, keyed by the hash of its inputs: the base image by the
# mmdebstrap command, the wheelhouse by the constraints and the target Python, the image by the base,
# the wheelhouse and every file the build copies. A warm run costs a few hashes and `docker image
# inspect`s. The image's tag goes to stdout (the only line there); progress goes to stderr.
#
#   deployments/build-image.sh                 # prints e.g. pgtender:src-3f2a9c0d1e4b5a69
#   deployments/build-image.sh --no-cache      # everything again (base, wheels, layers): a cold build
#   deployments/build-image.sh wheelhouse      # only the wheelhouse, for this host's Python; prints its path
#
# Environment: PGTENDER_IMAGE_NAME (default pgtender), PGTENDER_BASE_SUITE (bookworm),
# PGTENDER_BUILD_CACHE (wheelhouses; default ~/.cache/pgtender-build), PYTHON (the host Python whose
# pip downloads the wheels; default python3). Needs root (mmdebstrap, dockerd's socket).
set -euo pipefail
cd "$(dirname "$0")/.."

NAME=${PGTENDER_IMAGE_NAME:-pgtender}
SUITE=${PGTENDER_BASE_SUITE:-bookworm}
PACKAGES=python3,python3-venv,python-is-python3,ca-certificates,tzdata
CACHE=${PGTENDER_BUILD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pgtender-build}
PY=${PYTHON:-python3}
export DOCKER_BUILDKIT=0 # the classic builder: what prefect-docker's build step (docker-py) uses too

mode=image
no_cache=
for arg in "$@"; do
    case "$arg" in
        --no-cache) no_cache=1 ;;
        wheelhouse) mode=wheelhouse ;;
        *) echo "usage: $0 [--no-cache] [wheelhouse]" >&2; exit 2 ;;
    esac
done

say() { echo "build-image: $*" >&2; }
key() { sha256sum | cut -c1-16; }
timed() { # timed LABEL CMD...: run CMD, say how long it took
    local label=$1 start=$SECONDS
    shift
    "$@"
    say "$label: $((SECONDS - start)) s"
}

mkdir -p "$CACHE"
exec 9>"$CACHE/lock" # one build at a time on this machine (CI and a developer may overlap)
flock 9

# A Python's tags: "3.11 2.36 x86_64" (version, glibc, machine).
TAGS_PY='import platform, sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}", platform.libc_ver()[1], platform.machine())'

wheelhouse() { # wheelhouse "PYVER GLIBC MACHINE": the directory of wheels for that Python (built when missing)
    local tags=$1 pyver glibc machine
    read -r pyver glibc machine <<<"$tags"
    local k
    k=$(cat deployments/constraints.txt deployments/build-constraints.txt <(echo "$tags") | key)
    local dir="$CACHE/wheelhouse-$k"
    if [ -n "$no_cache" ]; then rm -rf "$dir"; fi
    if [ ! -f "$dir/.complete" ]; then
        rm -rf "$dir.tmp"
        local platforms=() minor
        for ((minor = ${glibc#*.}; minor >= 17; minor--)); do platforms+=(--platform "manylinux_2_${minor}_$machine"); done
        platforms+=(--platform "manylinux2014_$machine" --platform "manylinux2010_$machine" --platform "manylinux1_$machine")
        # every pin, whatever its environment marker says (pip evaluates markers for the Python that
        # runs it, not the target's): the image's pip picks the ones its Python needs
        mkdir -p "$dir.tmp"
        sed -e 's/#.*//' -e 's/;.*//' -e '/^[[:space:]]*$/d' deployments/constraints.txt \
            deployments/build-constraints.txt | sort -u >"$dir.tmp/pins.txt"
        timed "wheelhouse ($pyver, glibc $glibc, $machine)" \
            "$PY" -m pip download --quiet --quiet --disable-pip-version-check ${no_cache:+--no-cache-dir} \
            --no-deps --only-binary=:all: \
            --dest "$dir.tmp" --python-version "$pyver" --implementation cp --abi "cp${pyver/./}" \
            "${platforms[@]}" -r "$dir.tmp/pins.txt"
        touch "$dir.tmp/.complete"
        rm -rf "$dir"
        mv "$dir.tmp" "$dir"
    fi
    echo "$dir"
}

if [ "$mode" = wheelhouse ]; then
    wheelhouse "$("$PY" -c "$TAGS_PY")"
    exit 0
fi

if ! docker info >/dev/null 2>&1; then
    say "Docker is not reachable (is dockerd running? .ci/docker starts it)"
    exit 3
fi

# 1. The base image: Debian's packages, no registry.
base_key=$(echo "mmdebstrap --variant=minbase --include=$PACKAGES $SUITE" | key)
BASE="$NAME-base:$SUITE-$base_key"
if [ -n "$no_cache" ] || ! docker image inspect "$BASE" >/dev/null 2>&1; then
    command -v mmdebstrap >/dev/null || { say "mmdebstrap is not installed (apt-get install mmdebstrap)"; exit 3; }
    tmp=$(mktemp -d "$CACHE/rootfs.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    timed "base image rootfs (mmdebstrap $SUITE)" \
        mmdebstrap --quiet --variant=minbase --include="$PACKAGES" "$SUITE" "$tmp/rootfs.tar"
    timed "base image import" docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' \
        "$tmp/rootfs.tar" "$BASE" >/dev/null
    rm -rf "$tmp"
    trap - EXIT
fi
base_id=$(docker image inspect --format '{{.Id}}' "$BASE")
tags_file="$CACHE/tags-${base_id#sha256:}"
if [ ! -s "$tags_file" ]; then
    docker run --rm --network none "$BASE" python3 -c "$TAGS_PY" >"$tags_file.tmp"
    mv "$tags_file.tmp" "$tags_file"
fi

# 2. The wheelhouse, hard-linked into the build context (deployments/wheelhouse/, not committed).
wheels=$(wheelhouse "$(cat "$tags_file")")
wheels_key=${wheels##*-}
context=deployments/wheelhouse
if [ "$(cat "$context/.key" 2>/dev/null)" != "$wheels_key" ]; then
    find "$context" -maxdepth 1 -name '*.whl' -delete
    cp -l "$wheels"/*.whl "$context"/ 2>/dev/null || cp "$wheels"/*.whl "$context"/
    echo "$wheels_key" >"$context/.key"
fi

# 3. The image, tagged by everything the build reads.
image_key=$(
    {
        echo "$base_id $wheels_key"
        find pyproject.toml README.md .dockerignore deployments/Dockerfile deployments/constraints.txt \
            deployments/build-constraints.txt flows checks sql -type f ! -path '*/__pycache__/*' ! -name '*.pyc' \
            -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
    } | key
)
IMAGE="$NAME:src-$image_key"
if [ -n "$no_cache" ] || ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
    timed "docker build $IMAGE" docker build --quiet --force-rm ${no_cache:+--no-cache} --network none \
        -f deployments/Dockerfile --build-arg PYTHON_IMAGE="$BASE" --build-arg WHEELHOUSE=/wheelhouse \
        -t "$IMAGE" . >/dev/null
    # keep the five newest builds (their dependency layer is shared; `docker rmi` spares images in use)
    docker image ls "$NAME" --filter label=org.opencontainers.image.title=pgtender --format '{{.Repository}}:{{.Tag}}' |
        grep ':src-' | tail -n +6 | xargs -r docker image rm >/dev/null 2>&1 || true
else
    say "$IMAGE exists: nothing to build"
fi
echo "$IMAGE"
