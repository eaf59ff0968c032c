#!/usr/bin/env bash
# Make sure the PostgreSQL and Redis servers the tests use answer; start them if installed but stopped.
# Never stops anything. Exit status is 0 even if a service is missing: the tests decide (they fail under CI=true).
set -u
PGHOST=${TOKENBANK_TEST_PGHOST:-127.0.0.1}
PGPORT=${TOKENBANK_TEST_PGPORT:-5432}
REDIS_PORT=${TOKENBANK_TEST_REDIS_PORT:-6379}

wait_for() {  # wait_for "description" command...
  local what=$1; shift
  for _ in $(seq 1 30); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  echo "services: $what did not come up" >&2; return 1
}

if command -v pg_isready >/dev/null && pg_isready -q -h "$PGHOST" -p "$PGPORT"; then
  echo "services: PostgreSQL answers on $PGHOST:$PGPORT"
elif command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
  echo "services: starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  wait_for PostgreSQL pg_isready -q -h "$PGHOST" -p "$PGPORT"
else
  echo "services: PostgreSQL is not installed; PostgreSQL tests will skip (or fail under CI=true)" >&2
fi

if command -v redis-cli >/dev/null && redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1; then
  echo "services: Redis answers on 127.0.0.1:$REDIS_PORT"
elif command -v redis-server >/dev/null; then
  echo "services: starting Redis"
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
  wait_for Redis redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping
else
  echo "services: Redis is not installed; Redis tests will skip (or fail under CI=true)" >&2
fi
exit 0
