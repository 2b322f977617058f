-- Plain SQL, as psql, a migration or a service in another language writes
-- it: no cqrsync call anywhere. With capture triggers installed on account
-- (cqrsync capture install -c account), every committed change below
-- reaches the replicas; the rolled-back one does not.
INSERT INTO account (id, name, balance, born, active) VALUES
    (1, 'Ada', 10.50, '1815-12-10', TRUE),
    (2, 'Bob', 20.00, NULL, TRUE),
    (3, 'Cy', NULL, NULL, FALSE);
UPDATE account SET name = 'Ada Lovelace', balance = balance + 1 WHERE id = 1;
UPDATE account SET active = NOT active WHERE id IN (2, 3);
BEGIN;
UPDATE account SET name = 'never published' WHERE id = 1;
ROLLBACK;
DELETE FROM account WHERE id = 2;
INSERT INTO account (id, name, balance, active) VALUES (2, 'Bob, again', 5.25, TRUE);
UPDATE account SET tags = '{"vip": true, "since": 2024}' WHERE id = 3;
