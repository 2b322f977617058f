\set base random(1, 100000000)
BEGIN;
INSERT INTO pgb_item (id, cqrs_revision, cqrs_updated, commit_us, payload) SELECT v.g, 0, now(), 0, repeat('x',256) FROM generate_series(:base::bigint*100, :base::bigint*100+99) AS v(g) LEFT JOIN LATERAL (SELECT 1 AS hit FROM pgb_tomb ts WHERE ts.cqrs_id = 'item' AND ts.pk = v.g::text AND ts.revision >= 0 LIMIT 1) AS tomb ON true WHERE tomb.hit IS NULL ON CONFLICT (id) DO UPDATE SET cqrs_revision = excluded.cqrs_revision, payload = excluded.payload WHERE pgb_item.cqrs_revision < excluded.cqrs_revision RETURNING (pgb_item.id)::text, (SELECT old.cqrs_revision FROM pgb_item old WHERE old.id = pgb_item.id);
COMMIT;
