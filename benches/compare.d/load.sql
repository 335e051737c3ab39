-- benches/compare: loads `%012d<0x02>NDJSON line` rows from standard input
-- as citizens (id, doc jsonb). Creating the table in the loading
-- transaction lets COPY skip the WAL (wal_level = minimal); the primary key
-- is built once, after the rows.
BEGIN;
CREATE TABLE citizens (id text NOT NULL, doc jsonb NOT NULL);
\copy citizens (id, doc) from pstdin with (format csv, delimiter E'\x02', quote E'\x01')
COMMIT;
ALTER TABLE citizens ADD PRIMARY KEY (id);
VACUUM (ANALYZE) citizens;
CREATE EXTENSION pg_prewarm;
SELECT pg_prewarm('citizens') + pg_prewarm('citizens_pkey') AS pages_warmed \gset
