package main_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/internal/testenv"
)

// TestConsumePoolBounded: a consumer with 4 workers applying one event per
// transaction keeps its connections open instead of opening a new one per
// transaction (Go's default keeps 2 idle): the connections it opens through
// a counting proxy stay within workers + the tombstone purge + slack.
func TestConsumePoolBounded(t *testing.T) {
	testenv.Slow(t, "800 events one transaction each")
	t.Parallel()
	const n, workers = 800, 4
	mq := newBroker(t)
	queue := mq.queue()
	dsn, db := postgres(t, `CREATE TABLE account (id INT PRIMARY KEY, name TEXT NOT NULL,
		cqrs_revision INT NOT NULL DEFAULT 0, cqrs_updated TIMESTAMPTZ)`,
		`CREATE TABLE account_copy (id INT PRIMARY KEY, name TEXT NOT NULL,
		cqrs_revision INT NOT NULL, cqrs_updated TIMESTAMPTZ NOT NULL)`,
		fmt.Sprintf(`INSERT INTO account SELECT i, 'n' || i, 0, now() FROM generate_series(1, %d) i`, n))
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	proxy := cqrsynctesting.NewProxy(t, u.Host)
	transport := fmt.Sprintf("transport: {url: '%s', exchange: %s}\n", mq.url, mq.exchange)
	master := newService(t, fmt.Sprintf("database: {url: '%s'}\n%smasters:\n  - {cqrs_id: account, table: account}\n", dsn, transport))
	replica := newService(t, fmt.Sprintf("database: {url: '%s'}\n%squeue: %s\nreplicas:\n  - {cqrs_id: account, table: account_copy}\n",
		proxy.URL(t, dsn), transport, queue))
	master.run(t, "", "migrate").ok(t)

	consumer := replica.start(t, "consume", "-w", fmt.Sprint(workers), "--batch", "1")
	consumer.waitFor(t, "consuming queue "+queue)
	before := proxy.Accepted()
	master.run(t, "", "sync", "-c", "account", "-f", "{}").ok(t)
	eventually(t, "the replica to apply every SYNC", func() bool {
		return countDB(t, db, "SELECT COUNT(*) FROM account_copy") == n
	})
	opened := proxy.Accepted() - before
	code, errOut := consumer.terminate(t)
	if code != 0 || !strings.Contains(errOut, fmt.Sprintf("%d applied", n)) {
		t.Fatalf("consume: exit %d\n%s", code, errOut)
	}
	if limit := workers + 2; opened > limit {
		t.Fatalf("consume -w %d opened %d database connections for %d events; want at most %d", workers, opened, n, limit)
	}
}

// TestStartChecksSchema: consume and relay check at start that migrate ran
// and that each replica model's table has the columns it needs, and exit 2
// naming what is missing and what to run, instead of retrying every event
// and dead-lettering it; a complete schema starts. On SQLite, PostgreSQL
// and MariaDB.
func TestStartChecksSchema(t *testing.T) {
	t.Parallel()
	mq := newBroker(t)
	const tables = `CREATE TABLE account_copy (id INTEGER PRIMARY KEY, name VARCHAR(50), cqrs_revision INTEGER NOT NULL, cqrs_updated %[1]s NOT NULL);
		CREATE TABLE bare (id INTEGER PRIMARY KEY, name VARCHAR(50));
		CREATE TABLE half (id INTEGER PRIMARY KEY, cqrs_revision INTEGER NOT NULL, cqrs_updated %[1]s NOT NULL)`
	dbs := []struct {
		name, timestamp, alter string
		open                   func(t *testing.T, ddl ...string) string
	}{
		{"sqlite", "DATETIME", `ALTER TABLE "bare" ADD COLUMN "cqrs_revision" INTEGER NOT NULL DEFAULT 0`, func(t *testing.T, ddl ...string) string {
			path := filepath.Join(t.TempDir(), "app.db")
			createSQLite(t, path, ddl...)
			return "sqlite://" + path
		}},
		{"postgres", "TIMESTAMPTZ", `ALTER TABLE "bare" ADD COLUMN "cqrs_revision" INTEGER NOT NULL DEFAULT 0`, func(t *testing.T, ddl ...string) string {
			u, _ := postgres(t, ddl...)
			return u
		}},
		{"mariadb", "DATETIME(6)", "ALTER TABLE `bare` ADD COLUMN `cqrs_revision` INTEGER NOT NULL DEFAULT 0", func(t *testing.T, ddl ...string) string {
			u, _ := mariadb(t, ddl...)
			return u
		}},
	}
	for _, db := range dbs {
		t.Run(db.name, func(t *testing.T) {
			t.Parallel()
			url := db.open(t, strings.Split(fmt.Sprintf(tables, db.timestamp), ";")...)
			service := func(replica string) *service {
				return newService(t, fmt.Sprintf("database: {url: '%s'}\ntransport: {url: '%s', exchange: %s}\nqueue: %s\nreplicas:\n  - %s\n",
					url, mq.url, mq.exchange, mq.queue(), replica))
			}
			good := service("{cqrs_id: account, table: account_copy}")
			good.run(t, "", "consume").fails(t, 2, "consume: table cqrs_tombstones does not exist: run cqrsync migrate")
			good.run(t, "", "relay").fails(t, 2, "relay: table cqrs_outbox does not exist: run cqrsync migrate")
			good.run(t, "", "migrate").ok(t)

			service("{cqrs_id: account, table: nope}").run(t, "", "consume").fails(t, 2,
				"consume: replica model account: table nope does not exist: create it")
			service("{cqrs_id: account, table: bare}").run(t, "", "consume").fails(t, 2,
				"consume: replica model account: table bare has no column cqrs_revision, cqrs_updated: add them: "+db.alter)
			service("{cqrs_id: account, table: half, mapping: {id: id, name: title}}").run(t, "", "consume").fails(t, 2,
				"consume: replica model account: table half has no column title (mapped from name)")

			consumer := good.start(t, "consume")
			consumer.waitFor(t, "consuming queue")
			if code, errOut := consumer.terminate(t); code != 0 {
				t.Fatalf("consume on a migrated schema: exit %d\n%s", code, errOut)
			}
		})
	}
}

// TestMissingTableOrColumnExits2: a model whose table or column is missing
// is a configuration error (exit 2, one line), for the master and the
// replica commands alike, and bulk-load stops at it instead of reporting
// every line of the dump.
func TestMissingTableOrColumnExits2(t *testing.T) {
	t.Parallel()
	url, _ := postgres(t, `CREATE TABLE account (id INT PRIMARY KEY, name TEXT, cqrs_revision INT NOT NULL DEFAULT 0, cqrs_updated TIMESTAMPTZ)`)
	s := newService(t, fmt.Sprintf(`database: {url: '%s'}
masters:
  - {cqrs_id: gone, table: gone}
  - {cqrs_id: account, table: account, fields: [id, name, email]}
replicas:
  - {cqrs_id: gone, table: gone}
`, url))
	s.run(t, "", "migrate").ok(t)
	s.run(t, "", "bulk-dump", "-c", "gone", "-o", "-").fails(t, 2, "gone")
	s.run(t, "", "diff-master", "-c", "gone").fails(t, 2, "gone")
	s.run(t, "", "bulk-dump", "-c", "account", "-o", "-").fails(t, 2, "table account has no column [email]")
	s.run(t, "", "deleted-diff-replica", "-c", "gone").fails(t, 2, "gone")
	dump := "gone\n" + strings.Repeat(`{"id":1,"cqrs_revision":0,"cqrs_updated":"2024-01-01T00:00:00.000000+00:00"}`+"\n", 5)
	s.run(t, dump, "bulk-load", "-i", "-").fails(t, 2, "bulk-load: ")
}

// TestYAMLMasterForeignKeyName: a YAML master renames its foreign key
// column owner_id to Django's field name owner, so its dump line holds the
// instance_data django-cqrs sent for the same row (tracked_update_fk), in
// the order of a Django model with CQRS_FIELDS (the version fields last;
// the exact bytes are TestMasterFieldNamesDjangoFK's).
func TestYAMLMasterForeignKeyName(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join(cqrsynctesting.VectorsDir(t), "tracked_update_fk.json"))
	if err != nil {
		t.Fatal(err)
	}
	var vc struct {
		Messages []struct {
			Body string `json:"body"`
		} `json:"messages"`
	}
	if err := json.Unmarshal(raw, &vc); err != nil {
		t.Fatal(err)
	}
	body := vc.Messages[0].Body
	start := strings.Index(body, `"instance_data":`) + len(`"instance_data":`)
	want := body[start:strings.Index(body, `,"previous_data"`)]

	path := filepath.Join(t.TempDir(), "app.db")
	createSQLite(t, path, `CREATE TABLE djpeer_tracked (id INTEGER PRIMARY KEY, cqrs_revision INTEGER NOT NULL DEFAULT 0, cqrs_updated DATETIME,
		name VARCHAR(200) NOT NULL, status VARCHAR(20) NOT NULL, counter INTEGER NOT NULL, owner_id INTEGER)`,
		`INSERT INTO djpeer_tracked VALUES (5, 1, '2026-11-23 15:03:20.851450', 'case:tracked_update_fk', 'new', 0, 5)`)
	s := newService(t, fmt.Sprintf(`database: {url: 'sqlite://%s'}
masters:
  - cqrs_id: djpeer_tracked
    table: djpeer_tracked
    fields: [id, name, status, counter, {owner_id: owner}]
    tracked_fields: [name, status, owner_id]
`, path))
	r := s.run(t, "", "bulk-dump", "-c", "djpeer_tracked", "-o", "-")
	r.ok(t)
	header, line, _ := strings.Cut(r.out, "\n")
	var got, wantObj map[string]any
	if header != "djpeer_tracked" || json.Unmarshal([]byte(line), &got) != nil || json.Unmarshal([]byte(want), &wantObj) != nil ||
		!reflect.DeepEqual(got, wantObj) {
		t.Fatalf("dump:\n got %s\nwant djpeer_tracked\n%s", r.out, want)
	}
}
