package main_test

import (
	"fmt"
	"strings"
	"testing"
)

// TestRoundTrip is the round trip, with a PostgreSQL master and a
// MariaDB replica joined by RabbitMQ: dump the master's rows, load them into
// the empty replica, and the diff reports nothing; then drift on the replica
// (a changed row, a deleted row, an extra row), and the diff-and-repair
// pipes — real shell pipes between processes, with a consumer running —
// bring it back to equal.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	const n = 1000
	mq := newBroker(t)
	queue := mq.queue()
	masterURL, masterDB := postgres(t, `CREATE TABLE account (
		id BIGINT PRIMARY KEY, name TEXT NOT NULL, balance NUMERIC(12,2) NOT NULL,
		born DATE, tags JSONB, active BOOLEAN NOT NULL DEFAULT true,
		cqrs_revision INTEGER NOT NULL DEFAULT 0, cqrs_updated TIMESTAMPTZ)`,
		fmt.Sprintf(`INSERT INTO account
		SELECT i, 'name ' || i, i * 1.25, CASE WHEN i %% 3 = 0 THEN NULL ELSE DATE '1990-01-01' + i END,
			CASE WHEN i %% 2 = 0 THEN jsonb_build_object('i', i, 'even', true) END, i %% 5 <> 0,
			i %% 4, TIMESTAMPTZ '2024-05-01 12:00:00.123456+00' + i * INTERVAL '1 second'
		FROM generate_series(1, %d) AS i`, n))
	replicaURL, replicaDB := mariadb(t, `CREATE TABLE account_copy (
		id BIGINT PRIMARY KEY, full_name VARCHAR(200) NOT NULL, balance DECIMAL(12,2) NOT NULL,
		born DATE NULL, tags JSON NULL, active TINYINT(1) NOT NULL,
		cqrs_revision INT NOT NULL, cqrs_updated DATETIME(6) NOT NULL)`)

	transport := fmt.Sprintf("transport:\n  url: %s\n  exchange: %s\n", mq.url, mq.exchange)
	master := newService(t, fmt.Sprintf("database:\n  url: %s\n%s", masterURL, transport)+`
masters:
  - cqrs_id: account
    table: account
`)
	replica := newService(t, fmt.Sprintf("database:\n  url: %s\n%squeue: %s\n", replicaURL, transport, queue)+`
replica:
  workers: 2
replicas:
  - cqrs_id: account
    table: account_copy
    mapping: {id: id, name: full_name, balance: balance, born: born, tags: tags, active: active}
`)
	for _, s := range []*service{master, replica} {
		r := s.run(t, "", "migrate")
		r.ok(t)
		if !strings.HasSuffix(r.errOut, "database migrated\n") {
			t.Fatalf("migrate: %q", r.errOut)
		}
	}

	// Dump and load.
	r := master.run(t, "", "bulk-dump", "--cqrs-id", "account", "--batch", "300")
	r.ok(t)
	if want := fmt.Sprintf("Done!\n%d instance(s) saved.\n%d instance(s) processed.\n", n, n); r.errOut != want {
		t.Fatalf("bulk-dump stderr %q", r.errOut)
	}
	if err := copyFile(master.dir+"/account.dump", replica.dir+"/account.dump"); err != nil {
		t.Fatal(err)
	}
	r = replica.run(t, "", "bulk-load", "-i", "account.dump", "--batch", "250")
	r.ok(t)
	if want := fmt.Sprintf("Done!\n%d instance(s) loaded.\n", n); r.errOut != want {
		t.Fatalf("bulk-load stderr %q", r.errOut)
	}
	const masterRows = `SELECT id, name, balance, born, tags, active, cqrs_revision, cqrs_updated FROM account ORDER BY id`
	const replicaRows = `SELECT id, full_name, balance, born, tags, active, cqrs_revision, cqrs_updated FROM account_copy ORDER BY id`
	if m, rp := rows(t, masterDB, masterRows), rows(t, replicaDB, replicaRows); m != rp {
		t.Fatalf("after the load, the replica differs:\n%s", firstDiff(rp, m))
	}

	diff := fmt.Sprintf(`cd %s && "$CQRSYNC" diff-master -c account --batch 128 | (cd %s && "$CQRSYNC" diff-replica)`, master.dir, replica.dir)
	r = shell(t, master.dir, diff)
	r.ok(t)
	if strings.Count(r.out, "\n") != 1 || !strings.HasSuffix(r.out, ","+queue+"\n") || r.errOut != "" {
		t.Fatalf("diff after the load: stdout %q, stderr %q", r.out, r.errOut)
	}

	// Drift on the replica.
	execSQL(t, replicaDB,
		`UPDATE account_copy SET full_name = 'drifted', cqrs_revision = cqrs_revision + 5 WHERE id = 7`,
		`DELETE FROM account_copy WHERE id = 8`,
		`INSERT INTO account_copy VALUES (100000, 'extra', 0, NULL, NULL, 1, 0, '2024-01-01 00:00:00')`)

	consumer := replica.start(t, "consume")
	consumer.waitFor(t, "consuming queue "+queue+" (account) with 2 worker(s)")

	r = shell(t, master.dir, diff+fmt.Sprintf(` | (cd %s && "$CQRSYNC" diff-sync)`, master.dir))
	r.ok(t)
	if r.out != "Done!\n2 instance(s) synced.\n2 instance(s) processed.\n" || r.errOut != "PK to resync: {7, 8}\n" {
		t.Fatalf("diff | diff-replica | diff-sync: stdout %q, stderr %q", r.out, r.errOut)
	}
	r = shell(t, replica.dir, fmt.Sprintf(`"$CQRSYNC" deleted-diff-replica -c account -b 300 | (cd %s && "$CQRSYNC" deleted-diff-master) | "$CQRSYNC" deleted-sync-replica`, master.dir))
	r.ok(t)
	if r.out != "" || r.errOut != "PK to delete: [100000]\n" {
		t.Fatalf("deleted pipeline: stdout %q, stderr %q", r.out, r.errOut)
	}
	eventually(t, "the replica to equal the master", func() bool {
		return rows(t, masterDB, masterRows) == rows(t, replicaDB, replicaRows)
	})
	if r = shell(t, master.dir, diff); r.code != 0 || strings.Count(r.out, "\n") != 1 {
		t.Fatalf("diff after the repair: %q, %q", r.out, r.errOut)
	}

	code, errOut := consumer.terminate(t)
	if code != 0 || !strings.Contains(errOut, "consumer stopped: 2 received, 2 applied, 0 dropped") {
		t.Fatalf("consume after SIGTERM: exit %d\n%s", code, errOut)
	}
}

func firstDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := range min(len(g), len(w)) {
		if g[i] != w[i] {
			return fmt.Sprintf("line %d:\n got %s\nwant %s", i+1, g[i], w[i])
		}
	}
	return fmt.Sprintf("%d lines, want %d", len(g), len(w))
}
