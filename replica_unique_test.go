package cqrsync_test

import (
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/transport"
)

// memberDDL creates the replica table member, whose email is a unique key
// besides the primary key.
func memberDDL(rdb replicaDB) string {
	q := rdb.dialect.QuoteIdent
	return fmt.Sprintf(`CREATE TABLE %s (%s BIGINT NOT NULL PRIMARY KEY, %s VARCHAR(100) NOT NULL UNIQUE, %s INTEGER NOT NULL, %s %s NOT NULL)`,
		q("member"), q("id"), q("email"), q("cqrs_revision"), q("cqrs_updated"), rdb.timestamp)
}

// memberSave is a SAVE of member id with email, at revision rev.
func memberSave(cqrsID string, id, rev int64, email string) *cqrsync.Payload {
	updated := cqrsync.FormatDateTime(time.Date(2024, 5, 1, 10, 0, int(rev), 0, time.UTC))
	return &cqrsync.Payload{SignalType: cqrsync.SignalSave, CQRSID: cqrsID, InstancePK: id, Meta: cqrsync.Object{},
		InstanceData: cqrsync.Object{{Key: "id", Value: id}, {Key: "email", Value: email},
			{Key: "cqrs_revision", Value: rev}, {Key: "cqrs_updated", Value: updated}}}
}

// members returns the member table as "id=email@revision" in key order.
func members(t *testing.T, db *sql.DB, d sqldialect.Dialect) []string {
	t.Helper()
	q := d.QuoteIdent
	rows, err := db.QueryContext(t.Context(), fmt.Sprintf("SELECT %s, %s, %s FROM %s ORDER BY %s",
		q("id"), q("email"), q("cqrs_revision"), q("member"), q("id")))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id, rev int64
		var email string
		if err := rows.Scan(&id, &email, &rev); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%d=%s@%d", id, email, rev))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func wantMembers(t *testing.T, db *sql.DB, d sqldialect.Dialect, want ...string) {
	t.Helper()
	if got := members(t, db, d); !slices.Equal(got, want) {
		t.Fatalf("member rows %v, want %v", got, want)
	}
}

// uniqueViolation reports whether err is the database's unique-key
// violation: MySQL's ER_DUP_ENTRY (1062), PostgreSQL's 23505, SQLite's
// SQLITE_CONSTRAINT_UNIQUE (2067).
func uniqueViolation(err error) bool {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number == 1062
	}
	var pg interface{ SQLState() string }
	if errors.As(err, &pg) {
		return pg.SQLState() == "23505"
	}
	var lite interface{ Code() int }
	return errors.As(err, &lite) && lite.Code() == 2067
}

// runSecondaryUniqueKey: events of different keys are applied in parallel,
// so "7 takes a@x" may come before "5 gives a@x up". The SAVE of key 7 must
// then fail with the database's unique violation, not retryable by
// IsRetryable (the event's problem, for the retry policy), the same on
// every database, and write nothing: row 5 keeps its content and row 7 is
// not created. (MySQL's ON DUPLICATE KEY UPDATE used to write key 7's
// fields into row 5.) Once row 5 has changed, key 7 goes through.
func runSecondaryUniqueKey(t *testing.T, rdb replicaDB, batched bool) {
	b := setupRules(t, rdb, &cqrsync.ReplicaModel{CQRSID: "member", Table: "member"})
	b.batched = batched
	if _, err := b.db.ExecContext(t.Context(), memberDDL(rdb)); err != nil {
		t.Fatal(err)
	}
	b.mustApply(t, memberSave("member", 5, 0, "a@x"), cqrsync.OutcomeCreated)
	// Key 7 is at a higher revision than row 5: the revision guard alone
	// would let it overwrite row 5. Its retry fails the same way while row
	// 5 holds a@x.
	p := memberSave("member", 7, 3, "a@x")
	for range 2 {
		out, err := b.apply(t, p)
		if err == nil || !uniqueViolation(err) {
			t.Fatalf("SAVE of key 7 with row 5's email = %v, %v; want the database's unique violation", out, err)
		}
		if cqrsync.IsRetryable(err) {
			t.Fatalf("IsRetryable(%v) = true, want false: a constraint violation is the event's, for the retry policy", err)
		}
		wantMembers(t, b.db, b.d, "5=a@x@0")
		p.Retries++
	}
	b.mustApply(t, memberSave("member", 5, 1, "b@x"), cqrsync.OutcomeUpdated)
	b.mustApply(t, memberSave("member", 7, 3, "a@x"), cqrsync.OutcomeCreated)
	wantMembers(t, b.db, b.d, "5=b@x@1", "7=a@x@3")

	// In one batch, row 5 gives b@x up before key 7 takes it.
	tx, err := b.db.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	outs, err := b.replica.ApplyBatch(t.Context(), sqldialect.FromSQL(tx), []*cqrsync.Payload{
		memberSave("member", 5, 2, "c@x"), memberSave("member", 7, 4, "b@x"),
	})
	if err != nil {
		_ = tx.Rollback()
		t.Fatalf("ApplyBatch of 5 giving b@x up, then 7 taking it: %v", err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if want := []cqrsync.Outcome{cqrsync.OutcomeUpdated, cqrsync.OutcomeUpdated}; !slices.Equal(outs, want) {
		t.Fatalf("ApplyBatch outcomes %v, want %v", outs, want)
	}
	wantMembers(t, b.db, b.d, "5=c@x@2", "7=b@x@4")
}

// runUniqueKeyAddedLater: a unique key added to a replica table after the
// replica read its columns. On MySQL the first write that meets it fails
// with sqldialect.ErrUnknownUniqueKey (never writing the other row) and
// makes the replica read the table again; from the next attempt on, it
// fails as on the other databases, with the unique violation, until the
// other row has changed.
func runUniqueKeyAddedLater(t *testing.T, rdb replicaDB, batched bool) {
	b := setupRules(t, rdb, &cqrsync.ReplicaModel{CQRSID: "member", Table: "member"})
	b.batched = batched
	q := rdb.dialect.QuoteIdent
	if _, err := b.db.ExecContext(t.Context(), strings.Replace(memberDDL(rdb), " UNIQUE", "", 1)); err != nil {
		t.Fatal(err)
	}
	b.mustApply(t, memberSave("member", 5, 0, "a@x"), cqrsync.OutcomeCreated) // the replica reads the table
	if _, err := b.db.ExecContext(t.Context(), fmt.Sprintf("CREATE UNIQUE INDEX %s ON %s (%s)", q("member_email"), q("member"), q("email"))); err != nil {
		t.Fatal(err)
	}
	p := memberSave("member", 7, 3, "a@x")
	_, err := b.apply(t, p)
	if err == nil || cqrsync.IsRetryable(err) || (!uniqueViolation(err) && !errors.Is(err, sqldialect.ErrUnknownUniqueKey)) {
		t.Fatalf("SAVE of key 7 with row 5's email = %v; want a unique violation or ErrUnknownUniqueKey, not IsRetryable", err)
	}
	wantMembers(t, b.db, b.d, "5=a@x@0")
	if _, err := b.apply(t, p); !uniqueViolation(err) {
		t.Fatalf("SAVE of key 7 again = %v; want the database's unique violation", err)
	}
	wantMembers(t, b.db, b.d, "5=a@x@0")
	b.mustApply(t, memberSave("member", 5, 1, "b@x"), cqrsync.OutcomeUpdated)
	b.mustApply(t, p, cqrsync.OutcomeCreated)
	wantMembers(t, b.db, b.d, "5=b@x@1", "7=a@x@3")
}

// TestConsumerUniqueKeyConflictConverges: through the consumer, on every
// database, the SAVE of key 7 that takes an email row 5 still holds fails
// (a unique violation, which IsRetryable does not call transient: the
// retry policy retries it, as any constraint violation), is retried, and
// goes through once row 5's change has been applied: no dead letter, no
// row written into another.
func TestConsumerUniqueKeyConflictConverges(t *testing.T) {
	t.Parallel()
	for _, rdb := range []replicaDB{
		sqliteReplicaDB(),
		{dialect: sqldialect.Postgres(), open: func(t *testing.T) *sql.DB { return cqrsynctesting.OpenPostgres(t) }, timestamp: "TIMESTAMPTZ"},
		{dialect: sqldialect.MySQL(), open: func(t *testing.T) *sql.DB { return cqrsynctesting.OpenMySQL(t) }, timestamp: "DATETIME(6)"},
	} {
		t.Run(rdb.dialect.Name(), func(t *testing.T) {
			t.Parallel()
			db := rdb.open(t)
			if _, err := db.ExecContext(t.Context(), memberDDL(rdb)); err != nil {
				t.Fatal(err)
			}
			failed := make(chan struct{})
			var once sync.Once
			b := setupConsumer(t, consumerOpts{workers: 2, batch: 10, db: db, dialect: rdb.dialect,
				model: &cqrsync.ReplicaModel{CQRSID: "djpeer_basic", Table: "member"},
				retry: cqrsync.RetryPolicy{MaxRetries: 1000, Delay: func(int) time.Duration {
					once.Do(func() { close(failed) })
					return 5 * time.Millisecond
				}}})
			publish := func(p *cqrsync.Payload) {
				t.Helper()
				body, err := p.AppendJSON(nil)
				if err != nil {
					t.Fatal(err)
				}
				if err := b.pub.Publish(t.Context(), []transport.Message{{CQRSID: p.CQRSID, Body: body}}); err != nil {
					t.Fatal(err)
				}
			}
			publish(memberSave("djpeer_basic", 5, 0, "a@x"))
			b.settle(t)
			publish(memberSave("djpeer_basic", 7, 3, "a@x"))
			select {
			case <-failed: // key 7 failed and waits for its retry
			case <-time.After(60 * time.Second):
				t.Fatalf("the SAVE of key 7 was never retried (stats %+v)", b.consumer.Stats())
			}
			wantMembers(t, db, rdb.dialect, "5=a@x@0")
			publish(memberSave("djpeer_basic", 5, 1, "b@x"))
			b.settle(t)
			wantMembers(t, db, rdb.dialect, "5=b@x@1", "7=a@x@3")
			if st := b.consumer.Stats(); st.Retried < 1 || st.DeadLettered != 0 {
				t.Fatalf("stats %+v, want a retry and no dead letter", st)
			}
		})
	}
}
