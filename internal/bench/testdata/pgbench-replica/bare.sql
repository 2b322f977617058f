\set base random(1, 100000000)
BEGIN;
INSERT INTO pgb_item (id, cqrs_revision, cqrs_updated, commit_us, payload) SELECT g, 0, now(), 0, repeat('x',256) FROM generate_series(:base::bigint*100, :base::bigint*100+99) g ON CONFLICT (id) DO UPDATE SET cqrs_revision = excluded.cqrs_revision, payload = excluded.payload WHERE pgb_item.cqrs_revision < excluded.cqrs_revision;
COMMIT;
