#!/usr/bin/env bash
# A local PostgreSQL 15 cluster ("clock", port 5435) whose wall clock the tests can move, for the
# calendar matrix (.ci/calendar, tests/calendar.py). Its postmaster (and so every backend) runs with
# the shim .ci/clock/pgtender_clock.c preloaded, which adds the offset held in PGTENDER_CLOCK_FILE
# (signed seconds, e.g. "+2500000.25") to every wall-clock read; the clock keeps running, waits and
# monotonic clocks are untouched (why not libfaketime: see the shim's header).
# Idempotent: builds the shim when its source changed, creates the cluster once, (re)writes its
# settings and environment, starts it on the real clock (offset +0) and waits for connections.
# It never touches the other clusters.
#   .ci/setup-pg-clock.sh && export PGTENDER_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5435/postgres \
#       PGTENDER_CLOCK_FILE=/var/lib/postgresql/pgtender-clock/offset
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION="${PG_CLOCK_PG_VERSION:-15}"
CLUSTER="${PG_CLOCK_CLUSTER:-clock}"
PORT="${PG_CLOCK_PORT:-5435}"
CLOCK_FILE="${PGTENDER_CLOCK_FILE:-/var/lib/postgresql/pgtender-clock/offset}"
CONF_DIR="/etc/postgresql/${VERSION}/${CLUSTER}"
SHIM_DIR="$(dirname "${CLOCK_FILE}")"
SHIM="${SHIM_DIR}/pgtender_clock.so"

if ! command -v gcc >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc libc6-dev >/dev/null
fi

# The offset file: anyone running the tests may move this cluster's clock (it is a test cluster);
# writers replace it atomically (write a sibling, rename), hence the writable directory.
mkdir -p "${SHIM_DIR}"
chmod 0777 "${SHIM_DIR}"
[ -f "${CLOCK_FILE}" ] || printf '+0\n' > "${CLOCK_FILE}"
chmod 0666 "${CLOCK_FILE}"

restart=0
source_sum="$(sha256sum .ci/clock/pgtender_clock.c | cut -d' ' -f1)"
if [ ! -f "${SHIM}" ] || [ "$(cat "${SHIM}.sha256" 2>/dev/null)" != "${source_sum}" ]; then
    gcc -O2 -Wall -Wextra -Werror -shared -fPIC -o "${SHIM}.new" .ci/clock/pgtender_clock.c -ldl
    mv "${SHIM}.new" "${SHIM}"
    printf '%s\n' "${source_sum}" > "${SHIM}.sha256"
    restart=1
fi

if [ ! -d "${CONF_DIR}" ]; then
    pg_createcluster "${VERSION}" "${CLUSTER}" --port "${PORT}" -- --auth=trust >/dev/null
fi

write_if_changed() {  # file, content: rewrite it, and restart the cluster, only when it changed
    if [ ! -f "$1" ] || [ "$(cat "$1")" != "$2" ]; then
        printf '%s\n' "$2" > "$1"
        chown postgres:postgres "$1" 2>/dev/null || true
        restart=1
    fi
}
mkdir -p "${CONF_DIR}/conf.d"
write_if_changed "${CONF_DIR}/conf.d/clock.conf" "listen_addresses = '127.0.0.1'
port = ${PORT}
max_connections = 200"
# pg_ctlcluster starts the postmaster with this environment; every backend inherits it.
write_if_changed "${CONF_DIR}/environment" "LD_PRELOAD = '${SHIM}'
PGTENDER_CLOCK_FILE = '${CLOCK_FILE}'"

if pg_ctlcluster "${VERSION}" "${CLUSTER}" status >/dev/null 2>&1 && [ "${restart}" = 1 ]; then
    pg_ctlcluster --skip-systemctl-redirect "${VERSION}" "${CLUSTER}" restart
fi
if ! pg_ctlcluster "${VERSION}" "${CLUSTER}" status >/dev/null 2>&1; then
    pg_ctlcluster --skip-systemctl-redirect "${VERSION}" "${CLUSTER}" start
fi
for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p "${PORT}" && break; sleep 1; done
pg_isready -h 127.0.0.1 -p "${PORT}"
echo "clock cluster ready: postgresql://postgres@127.0.0.1:${PORT}/postgres, offset file ${CLOCK_FILE}"
