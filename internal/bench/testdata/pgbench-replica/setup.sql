-- Tables for the replica statement study in BENCHMARKS.md ("The drain's
-- ceiling"): psql -f setup.sql test, then pgbench -n -c 4 -T 5 -f <script>.
DROP TABLE IF EXISTS pgb_item, pgb_tomb;
CREATE TABLE pgb_item (id bigint PRIMARY KEY, cqrs_revision int NOT NULL, cqrs_updated timestamptz, commit_us bigint, payload text);
CREATE TABLE pgb_tomb (cqrs_id text, pk text, revision bigint, updated_us bigint, PRIMARY KEY (cqrs_id, pk));
