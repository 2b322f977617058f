package cqrsync_test

import (
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/sqldialect"
)

// TestConsumerRereadsTableAfterColumnDropped drops a column the model
// writes (declared in its Types) while a consumer runs: the event fails and
// is retried. A column the events carry is then added, and the dropped one
// added back: the event must be applied with both, without a restart, which
// it is only if the failure evicted the model's cached table metadata (the
// stale metadata lacks the new column, and would silently drop its field).
func TestConsumerRereadsTableAfterColumnDropped(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		dialect sqldialect.Dialect
		open    func(testing.TB, ...string) *sql.DB
		ts, ph  string // the timestamp type, the placeholder of the row query
	}{
		{"sqlite", sqldialect.SQLite(), cqrsynctesting.OpenSQLite, "DATETIME", "?"},
		{"postgres", sqldialect.Postgres(), cqrsynctesting.OpenPostgres, "TIMESTAMP WITH TIME ZONE", "$1"},
	} {
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
			exec := func(stmt string) {
				t.Helper()
				if _, err := db.ExecContext(t.Context(), stmt); err != nil {
					t.Fatalf("%s: %v", stmt, err)
				}
			}
			exec(`ALTER TABLE djpeer_basic DROP COLUMN nullable_char`)
			b.publish(t, "djpeer_basic", body(2))
			waitFor(t, 30*time.Second, func() bool { return b.consumer.Stats().Retried > 0 }, "event 2 to fail and be retried")
			exec(`ALTER TABLE djpeer_basic ADD COLUMN extra_char VARCHAR(200)`)
			exec(`ALTER TABLE djpeer_basic ADD COLUMN nullable_char VARCHAR(200)`)
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
