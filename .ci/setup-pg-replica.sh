#!/usr/bin/env bash
# A streaming replica ("replica", port 5434) of the "cron" cluster (port 5433, made by
# .ci/setup-pg-cron.sh, which must run first), for tests/test_replica.py: what pgtender does when
# pointed at a hot standby, and the health replication probe against a real replica.
# Idempotent: clones the primary once (pg_basebackup -R), starts the standby and waits until it
# accepts connections in recovery. It never touches the main cluster on 5432.
#   .ci/setup-pg-replica.sh && export PGTENDER_REPLICA_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5434/postgres
set -euo pipefail

VERSION="${PG_CRON_PG_VERSION:-15}"
PRIMARY_PORT="${PG_CRON_PORT:-5433}"
CLUSTER="${PG_REPLICA_CLUSTER:-replica}"
PORT="${PG_REPLICA_PORT:-5434}"
CONF_DIR="/etc/postgresql/${VERSION}/${CLUSTER}"
DATA_DIR="/var/lib/postgresql/${VERSION}/${CLUSTER}"
BIN="/usr/lib/postgresql/${VERSION}/bin"

pg_isready -q -h 127.0.0.1 -p "${PRIMARY_PORT}" || { echo "the primary on port ${PRIMARY_PORT} is not up" >&2; exit 1; }

if [ ! -d "${CONF_DIR}" ]; then
    pg_createcluster "${VERSION}" "${CLUSTER}" --port "${PORT}" -- --auth=trust >/dev/null
    find "${DATA_DIR}" -mindepth 1 -delete
    runuser -u postgres -- "${BIN}/pg_basebackup" -h 127.0.0.1 -p "${PRIMARY_PORT}" -U postgres \
        -D "${DATA_DIR}" -R -X stream -c fast
fi

mkdir -p "${CONF_DIR}/conf.d"
printf '%s\n' "listen_addresses = '127.0.0.1'" "port = ${PORT}" "hot_standby = on" \
    > "${CONF_DIR}/conf.d/replica.conf"
chown postgres:postgres "${CONF_DIR}/conf.d/replica.conf" 2>/dev/null || true

if ! pg_ctlcluster "${VERSION}" "${CLUSTER}" status >/dev/null 2>&1; then
    pg_ctlcluster --skip-systemctl-redirect "${VERSION}" "${CLUSTER}" start
fi
for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p "${PORT}" && break; sleep 1; done
in_recovery="$(psql -X -At "postgresql://postgres@127.0.0.1:${PORT}/postgres" -c 'SELECT pg_is_in_recovery()')"
[ "${in_recovery}" = "t" ] || { echo "the cluster on port ${PORT} is not a standby" >&2; exit 1; }
echo "replica ready: postgresql://postgres@127.0.0.1:${PORT}/postgres (of port ${PRIMARY_PORT})"
