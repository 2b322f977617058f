package cqrsync_test

import (
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
)

// checkDatabases are the databases the schema change tests run on:
// ts is the timestamp type, ph the placeholder of a one-parameter query.
// execDDL runs stmt on db, failing the test if it fails.
func execDDL(t *testing.T, db *sql.DB, stmt string) {
	t.Helper()
	if _, err := db.ExecContext(t.Context(), stmt); err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
}

// TestConsumerRereadsTableAfterColumnDropped drops a column the model
// writes (declared in its Types) while a consumer runs: the event fails and
// is retried. A column the events carry is then added, and the dropped one
// added back: the event must be applied with both, without a restart, which
// it is only if the failure evicted the model's cached table metadata (the
// stale metadata lacks the new column, and would silently drop its field).
func TestConsumerRereadsTableAfterColumnDropped(t *testing.T) {
	t.Parallel()
	for _, tc := range checkDatabases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db := tc.open(t, `CREATE TABLE djpeer_basic (id INTEGER PRIMARY KEY, cqrs_revision INTEGER NOT NULL,
				cqrs_updated `+tc.ts+` NOT NULL, int_field INTEGER NOT NULL, char_field VARCHAR(200) NOT NULL,
				bool_field BOOLEAN NOT NULL, nullable_char VARCHAR(200))`)
			model := &cqrsync.ReplicaModel{CQRSID: "djpeer_basic", Table: "djpeer_basic",
				Types: map[string]cqrsync.ValueType{"nullable_char": cqrsync.TypeString}}
			b := setupConsumer(t, consumerOpts{workers: 1, db: db, dialect: tc.dialect, model: model,
				retry: cqrsync.RetryPolicy{MaxRetries: 1 << 30, Delay: func(int) time.Duration { return 5 * time.Millisecond }}})
			now := time.Now()
			body := func(id int64) string {
				return strings.Replace(saveBody("SAVE", id, 0, id, now), `"bool_field":false`,
					`"bool_field":false,"nullable_char":"n","extra_char":"e"`, 1)
			}
			b.publish(t, "djpeer_basic", body(1))
			b.settle(t) // the model's table metadata is cached
			execDDL(t, db, `ALTER TABLE djpeer_basic DROP COLUMN nullable_char`)
			b.publish(t, "djpeer_basic", body(2))
			waitFor(t, 30*time.Second, func() bool { return b.consumer.Stats().Retried > 0 }, "event 2 to fail and be retried")
			execDDL(t, db, `ALTER TABLE djpeer_basic ADD COLUMN extra_char VARCHAR(200)`)
			execDDL(t, db, `ALTER TABLE djpeer_basic ADD COLUMN nullable_char VARCHAR(200)`)
			b.settle(t)
			var nc, ec sql.NullString
			if err := db.QueryRowContext(t.Context(), "SELECT nullable_char, extra_char FROM djpeer_basic WHERE id = "+tc.ph, 2).Scan(&nc, &ec); err != nil {
				t.Fatalf("row 2: %v (stats %+v)", err, b.consumer.Stats())
			}
			if nc.String != "n" || ec.String != "e" {
				t.Fatalf("row 2 nullable_char, extra_char = %v, %v; want n, e (the table re-read after the failure)", nc, ec)
			}
			if st := b.consumer.Stats(); st.DeadLettered != 0 {
				t.Fatalf("stats = %+v, want no dead letter", st)
			}
		})
	}
}

// TestReplicaCheckProblemsEvictCachedTable runs Check on a model whose
// table lost a column its Types declares, after an event cached the table's
// metadata: Check reports the problem, and the fixed table (with a column
// added meanwhile) is re-read by the next event, whose field for the new
// column is stored instead of silently dropped.
func TestReplicaCheckProblemsEvictCachedTable(t *testing.T) {
	t.Parallel()
	db := cqrsynctesting.OpenSQLite(t, `CREATE TABLE djpeer_basic (id INTEGER PRIMARY KEY, cqrs_revision INTEGER NOT NULL,
		cqrs_updated DATETIME NOT NULL, int_field INTEGER NOT NULL, char_field VARCHAR(200) NOT NULL,
		bool_field BOOLEAN NOT NULL, nullable_char VARCHAR(200))`)
	ex := sqldialect.FromSQL(db)
	replica, err := cqrsync.NewReplica(databasesql.New(db, sqldialect.SQLite()), &cqrsync.ReplicaConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if err := replica.Register(&cqrsync.ReplicaModel{CQRSID: "djpeer_basic", Table: "djpeer_basic",
		Types: map[string]cqrsync.ValueType{"nullable_char": cqrsync.TypeString}}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	apply := func(id int64) {
		t.Helper()
		body := strings.Replace(saveBody("SAVE", id, 0, id, now), `"bool_field":false`, `"bool_field":false,"nullable_char":"n","extra_char":"e"`, 1)
		p, err := cqrsync.DecodePayload([]byte(body), now)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := replica.Apply(t.Context(), ex, p); err != nil {
			t.Fatalf("event %d: %v", id, err)
		}
	}
	apply(1) // caches the metadata
	execDDL(t, db, `ALTER TABLE djpeer_basic DROP COLUMN nullable_char`)
	if err := replica.Check(t.Context(), ex); !errors.Is(err, cqrsync.ErrSchema) || !strings.Contains(err.Error(), "nullable_char") {
		t.Fatalf("Check = %v, want the missing nullable_char", err)
	}
	execDDL(t, db, `ALTER TABLE djpeer_basic ADD COLUMN extra_char VARCHAR(200)`)
	execDDL(t, db, `ALTER TABLE djpeer_basic ADD COLUMN nullable_char VARCHAR(200)`)
	apply(2)
	var ec sql.NullString
	if err := db.QueryRowContext(t.Context(), "SELECT extra_char FROM djpeer_basic WHERE id = 2").Scan(&ec); err != nil {
		t.Fatal(err)
	}
	if ec.String != "e" {
		t.Fatalf("row 2 extra_char = %v, want e (the table re-read after Check found problems)", ec)
	}
}

// TestMasterRereadsTableAfterColumnDropped drops a column a master model's
// Insert writes: the Insert fails on it. A column is then added, and the
// dropped one added back: an Insert writing both must succeed, which it
// does only if the failure evicted the model's cached table metadata (the
// stale metadata lacks the new column, and Insert refuses it).
func TestMasterRereadsTableAfterColumnDropped(t *testing.T) {
	t.Parallel()
	for _, tc := range checkDatabases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			db := tc.open(t, `CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT,
				cqrs_revision INTEGER NOT NULL DEFAULT 0, cqrs_updated `+tc.ts+`)`)
			master, err := cqrsync.NewMaster(databasesql.New(db, tc.dialect), nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := master.Register(&cqrsync.MasterModel{CQRSID: "item", Table: "item"}); err != nil {
				t.Fatal(err)
			}
			mb := &masterBundle{db: db, master: master}
			insert := func(values map[string]any) error {
				return mb.inTx(t, func(tx *sql.Tx) error { return master.Insert(ctx, tx, "item", values) })
			}
			if err := insert(map[string]any{"id": 1, "name": "a"}); err != nil {
				t.Fatal(err) // caches the metadata
			}
			execDDL(t, db, `ALTER TABLE item DROP COLUMN name`)
			if err := insert(map[string]any{"id": 2, "name": "b"}); err == nil || !strings.Contains(err.Error(), "name") {
				t.Fatalf("Insert after the drop = %v, want an error naming the column", err)
			}
			execDDL(t, db, `ALTER TABLE item ADD COLUMN extra TEXT`)
			execDDL(t, db, `ALTER TABLE item ADD COLUMN name TEXT`)
			if err := insert(map[string]any{"id": 3, "name": "c", "extra": "x"}); err != nil {
				t.Fatalf("Insert after the fix = %v, want the table re-read", err)
			}
		})
	}
}

// TestMasterRereadsTableMissingFieldColumn captures a change of a master
// model whose Fields names a column the table lacks: the capture fails,
// and once the column is added the next one succeeds without a restart,
// which it does only if the failure evicted the metadata read without it.
func TestMasterRereadsTableMissingFieldColumn(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := cqrsynctesting.OpenSQLite(t, `CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT,
		cqrs_revision INTEGER NOT NULL DEFAULT 0, cqrs_updated DATETIME)`)
	master, err := cqrsync.NewMaster(databasesql.New(db, sqldialect.SQLite()), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := master.Register(&cqrsync.MasterModel{CQRSID: "item", Table: "item", Fields: []string{"id", "name", "extra"}}); err != nil {
		t.Fatal(err)
	}
	mb := &masterBundle{db: db, master: master}
	insert := func(id int) error {
		return mb.inTx(t, func(tx *sql.Tx) error { return master.Insert(ctx, tx, "item", map[string]any{"id": id, "name": "a"}) })
	}
	if err := insert(1); !errors.Is(err, cqrsync.ErrSchema) || !strings.Contains(err.Error(), "extra") {
		t.Fatalf("Insert = %v, want the missing column extra", err)
	}
	execDDL(t, db, `ALTER TABLE item ADD COLUMN extra TEXT`)
	if err := insert(2); err != nil {
		t.Fatalf("Insert after the column was added = %v, want the table re-read", err)
	}
}
