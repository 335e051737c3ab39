# Sourced by benches/compare: Redis and PostgreSQL, each loaded with the
# records of the snapshot as `dancu-data export` writes them (one NDJSON
# line a record), and measured with its own benchmark tool.
#
# Both key a record by its ordinal in the export, written as 12 digits (an
# ID's length): redis-benchmark's `__rand_int__` and pgbench's `random()`
# then always name a stored record, as wrk's sampled IDs do for dancu.

# peers_fit: skips Redis (memory) or PostgreSQL (disk) when their copy of
# the records would not fit, from the size of the first 1000 exported.
peers_fit() {
  local per_record need_kb
  per_record="$("$BIN/dancu-data" export --from "$SNAP" --format ndjson --limit 1000 2>/dev/null |
    LC_ALL=C awk '{ n += length($0) + 1 } END { print int(n / NR) }')"
  need_kb=$((RECORDS * per_record * 3 / 2 / 1024))
  if enabled redis && [ "$need_kb" -gt $(($(mem_available_kb) / 2)) ]; then
    skip redis "$((need_kb / 1048576)) GiB of records would not fit in half of the available memory"
  fi
  # The export file and the table, side by side.
  if enabled postgres && [ $((need_kb * 2)) -gt "$(df -k --output=avail "$TMP" | tail -1)" ]; then
    skip postgres "$((need_kb * 2 / 1048576)) GiB of export and table would not fit on the disk of $TMP"
  fi
}

redis_info() { redis-cli -p "$REDIS_PORT" info | tr -d '\r' | awk -F: -v k="$1" '$1 == k { print $2 }'; }

# redis_setup FILE: starts Redis without persistence and SETs every record.
redis_setup() {
  if ! need redis-server redis-server; then
    skip redis "redis-server is not installed and apt-get could not install it"
    return 0
  fi
  mkdir -p "$TMP/redis"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$TMP/redis" --save '' --appendonly no \
    --daemonize no >"$TMP/redis.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 100); do
    if redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then break; fi
    sleep 0.1
  done
  echo "== loading Redis $(redis_info redis_version)" >&2
  local before out
  before="$(redis_info used_memory)"
  out="$(LC_ALL=C awk '{ printf "*3\r\n$3\r\nSET\r\n$12\r\n%012d\r\n$%d\r\n%s\r\n", NR - 1, length($0), $0 }' "$1" |
    redis-cli -p "$REDIS_PORT" --pipe 2>&1)"
  if ! grep -q "errors: 0, replies: $RECORDS\$" <<<"$out"; then
    skip redis "loading failed: $(tail -1 <<<"$out")"
    return 0
  fi
  record bytes.redis "$(awk -v a="$(redis_info used_memory)" -v b="$before" -v n="$RECORDS" \
    'BEGIN { printf "%.1f", (a - b) / n }')"
}

# redis_rate DEPTH: GETs/s of random records, DEPTH pipelined a connection.
# redis-benchmark counts requests, not seconds: each run asks for as many
# as the last one did in DURATION.
redis_rate() {
  local last="$TMP/redis-last-$1" n out rate
  n="$(awk -v r="$(cat "$last" 2>/dev/null || echo $((50000 * $1)))" -v d="$DURATION" \
    'BEGIN { n = int(r * d); print (n < 10000 ? 10000 : n) }')"
  out="$(redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -c "$CONNS" --threads 2 -n "$n" -r "$RECORDS" \
    -P "$1" -q GET __rand_int__ 2>&1 | tr '\r' '\n' | grep 'requests per second' | tail -1)"
  rate="$(sed -n 's/.*: \([0-9.]*\) requests per second.*/\1/p' <<<"$out")"
  echo "$rate" >"$last"
  echo "$rate"
}

# Every GET must have found its record, or the rate measures misses.
redis_check_misses() {
  if ! enabled redis; then return 0; fi
  local misses
  misses="$(redis_info keyspace_misses)"
  if [ "${misses:-0}" != 0 ]; then warn "Redis answered $misses GETs with no record"; fi
}

as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

PG_STARTED=""
pg_stop() {
  if [ -n "$PG_STARTED" ]; then as_postgres "$PG_BIN/pg_ctl" -D "$TMP/pg/data" -m fast stop >/dev/null 2>&1 || true; fi
}

psql_do() { "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -X -q -v ON_ERROR_STOP=1 "$@"; }

# pg_setup FILE: a private PostgreSQL cluster under $TMP with the records
# as `citizens (id text PRIMARY KEY, doc jsonb)`, in shared buffers.
pg_setup() {
  PG_BIN="$(find /usr/lib/postgresql -maxdepth 2 -name bin 2>/dev/null | sort -V | tail -1)"
  if [ -z "$PG_BIN" ] && need pgbench postgresql; then
    PG_BIN="$(find /usr/lib/postgresql -maxdepth 2 -name bin 2>/dev/null | sort -V | tail -1)"
  fi
  if [ -z "$PG_BIN" ] || [ ! -x "$PG_BIN/pgbench" ]; then
    skip postgres "PostgreSQL is not installed and apt-get could not install it"
    return 0
  fi
  mkdir -p "$TMP/pg"
  if [ "$(id -u)" = 0 ]; then
    chmod 711 "$TMP"
    chown postgres: "$TMP/pg"
  fi
  if ! as_postgres "$PG_BIN/initdb" -D "$TMP/pg/data" -U postgres --auth=trust -E UTF8 --locale=C \
    --no-sync >"$TMP/pg-initdb.log" 2>&1; then
    skip postgres "initdb failed: $(tail -1 "$TMP/pg-initdb.log")"
    return 0
  fi
  # A quarter of the memory for shared buffers; WAL-less loading
  # (wal_level minimal); no checkpoint in the middle of a measurement.
  local buffers_mb=$(($(awk '/^MemTotal:/ { print $2 }' /proc/meminfo) / 4096))
  if ! as_postgres "$PG_BIN/pg_ctl" -D "$TMP/pg/data" -l "$TMP/pg/log" -w -t 120 -o "-p $PG_PORT \
    -c listen_addresses=127.0.0.1 -c unix_socket_directories=$TMP/pg -c shared_buffers=${buffers_mb}MB \
    -c max_connections=$((CONNS + 20)) -c wal_level=minimal -c max_wal_senders=0 -c max_wal_size=8GB \
    -c checkpoint_timeout=30min" start >/dev/null 2>&1; then
    skip postgres "the server did not start: $(tail -1 "$TMP/pg/log")"
    return 0
  fi
  PG_STARTED=1
  echo "== loading PostgreSQL $(psql_do -At -c 'SHOW server_version')" >&2
  if ! LC_ALL=C awk '{ printf "%012d\002%s\n", NR - 1, $0 }' "$1" | psql_do -f "$BENCHES_D/load.sql" >&2; then
    skip postgres "loading failed"
    return 0
  fi
  record bytes.postgres "$(psql_do -At -c "SELECT round(pg_total_relation_size('citizens') / $RECORDS.0, 1)")"
}

# pg_script DEPTH: a pgbench script of DEPTH reads by primary key, in one
# pipeline when DEPTH > 1.
pg_script() {
  local i
  for i in $(seq 1 "$1"); do echo "\\set i$i random(0, :records - 1)"; done
  if [ "$1" -gt 1 ]; then echo '\startpipeline'; fi
  for i in $(seq 1 "$1"); do echo "SELECT doc FROM citizens WHERE id = lpad(CAST(:i$i AS text), 12, '0');"; done
  if [ "$1" -gt 1 ]; then echo '\endpipeline'; fi
}

# pg_tps SCRIPT: pgbench's transactions (runs of SCRIPT) per second.
pg_tps() {
  local out
  out="$("$PG_BIN/pgbench" -h 127.0.0.1 -p "$PG_PORT" -U postgres -n -M prepared -c "$CONNS" -j 2 \
    -T "$DURATION" -D records="$RECORDS" -f "$1" postgres 2>&1)"
  if grep -q 'failed transactions: [1-9]' <<<"$out"; then warn "pgbench $1: $(grep 'failed transactions' <<<"$out")"; fi
  sed -n 's/^tps = \([0-9.]*\) .*/\1/p' <<<"$out" | tail -1
}

# pg_rate DEPTH: reads/s, DEPTH in flight a connection.
pg_rate() {
  pg_script "$1" >"$TMP/pg-get-$1.sql"
  awk -v t="$(pg_tps "$TMP/pg-get-$1.sql")" -v d="$1" 'BEGIN { if (t != "") print t * d }'
}

# pg_write_rate: committed UPDATEs/s of one field of random records (a move,
# as writes.sh's PATCH), each its own transaction, fsynced at commit.
pg_write_rate() { pg_tps "$BENCHES_D/move.sql"; }
