#!/usr/bin/env bash
# A second local PostgreSQL 15 cluster ("cron", port 5433) with pg_cron and pg_stat_statements
# preloaded, for tests/test_cron.py and the pg_stat_statements branch of tests/test_health.py.
# Idempotent: installs the package if missing, creates the cluster once, (re)writes its settings,
# starts it and creates pg_cron. It never touches the main cluster on 5432.
#   .ci/setup-pg-cron.sh && export PGTENDER_CRON_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5433/postgres
set -euo pipefail

VERSION="${PG_CRON_PG_VERSION:-15}"
CLUSTER="${PG_CRON_CLUSTER:-cron}"
PORT="${PG_CRON_PORT:-5433}"
CONF_DIR="/etc/postgresql/${VERSION}/${CLUSTER}"

if ! dpkg -s "postgresql-${VERSION}-cron" >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "postgresql-${VERSION}-cron" >/dev/null
fi

if [ ! -d "${CONF_DIR}" ]; then
    pg_createcluster "${VERSION}" "${CLUSTER}" --port "${PORT}" -- --auth=trust >/dev/null
fi

mkdir -p "${CONF_DIR}/conf.d"
conf="${CONF_DIR}/conf.d/pg_cron.conf"
want="shared_preload_libraries = 'pg_cron, pg_stat_statements'
cron.database_name = 'postgres'
cron.use_background_workers = off
listen_addresses = '127.0.0.1'
port = ${PORT}"
if [ ! -f "${conf}" ] || [ "$(cat "${conf}")" != "${want}" ]; then
    printf '%s\n' "${want}" > "${conf}"
    chown postgres:postgres "${conf}" 2>/dev/null || true
    if pg_ctlcluster "${VERSION}" "${CLUSTER}" status >/dev/null 2>&1; then
        pg_ctlcluster --skip-systemctl-redirect "${VERSION}" "${CLUSTER}" restart
    fi
fi

if ! pg_ctlcluster "${VERSION}" "${CLUSTER}" status >/dev/null 2>&1; then
    pg_ctlcluster --skip-systemctl-redirect "${VERSION}" "${CLUSTER}" start
fi
for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p "${PORT}" && break; sleep 1; done
pg_isready -h 127.0.0.1 -p "${PORT}"

psql -X -q -v ON_ERROR_STOP=1 "postgresql://postgres@127.0.0.1:${PORT}/postgres" \
    -c "SET client_min_messages = warning" -c "CREATE EXTENSION IF NOT EXISTS pg_cron"
echo "pg_cron + pg_stat_statements ready: postgresql://postgres@127.0.0.1:${PORT}/postgres"
