package cqrsync_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/transport"
)

// publishAll publishes SAVEs of djpeer_basic in one go.
func (b *consumerBundle) publishAll(t *testing.T, bodies ...string) {
	t.Helper()
	msgs := make([]transport.Message, len(bodies))
	for i, body := range bodies {
		msgs[i] = transport.Message{CQRSID: "djpeer_basic", Body: []byte(body)}
	}
	if err := b.pub.Publish(t.Context(), msgs); err != nil {
		t.Fatal(err)
	}
}

// deadLetterReasons returns the reason of every dead letter, by instance_pk.
func (b *consumerBundle) deadLetterReasons(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	_, err := b.broker.ScanDeadLetters(t.Context(), transport.DeadLetterQueue(b.queue), func(_ context.Context, m *transport.Message) (transport.DeadLetterAction, error) {
		p, err := cqrsync.DecodePayload(m.Body, time.Time{})
		if err != nil {
			return transport.DeadLetterKeep, err
		}
		out[fmt.Sprint(p.InstancePK)] = m.Headers[cqrsync.HeaderDeadLetterReason]
		return transport.DeadLetterKeep, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestConsumerQueryTimeoutGoesToDeadLetters: an event whose database work
// outlasts its model's QueryTimeout is the event's failure, not the
// database's: it goes through the retry policy to the dead letters, and the
// events behind it on the same worker are applied meanwhile.
func TestConsumerQueryTimeoutGoesToDeadLetters(t *testing.T) {
	t.Parallel()
	// On PostgreSQL, the SAVE of row 1 waits for a row lock that another
	// transaction holds until the test ends.
	t.Run("PostgreSQL", func(t *testing.T) {
		t.Parallel()
		db := cqrsynctesting.OpenPostgres(t, `CREATE TABLE djpeer_basic (id BIGINT PRIMARY KEY, cqrs_revision INTEGER NOT NULL,
			cqrs_updated TIMESTAMPTZ NOT NULL, int_field INTEGER NOT NULL, char_field TEXT NOT NULL, bool_field BOOLEAN NOT NULL)`)
		if _, err := db.ExecContext(t.Context(), `INSERT INTO djpeer_basic VALUES (1, 0, '2026-01-01 00:00:00', 0, 'c', false)`); err != nil {
			t.Fatal(err)
		}
		locker, err := db.BeginTx(t.Context(), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer locker.Rollback() //nolint:errcheck // releases the lock
		if _, err := locker.ExecContext(t.Context(), `SELECT 1 FROM djpeer_basic WHERE id = 1 FOR UPDATE`); err != nil {
			t.Fatal(err)
		}
		runQueryTimeout(t, db, sqldialect.Postgres(), &cqrsync.ReplicaModel{CQRSID: "djpeer_basic", Table: "djpeer_basic"}, func() int {
			var n int
			if err := db.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM djpeer_basic WHERE id IN (2, 3)`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		})
	})
	// On MariaDB, a handler of row 1 sleeps on the server. (A statement
	// cut by a timeout is not stopped there: go-sql-driver only drops the
	// connection, so one blocked on a row lock keeps waiting, holding its
	// own locks, until innodb_lock_wait_timeout, and may block the next
	// events' statements too.)
	t.Run("MariaDB", func(t *testing.T) {
		t.Parallel()
		db := cqrsynctesting.OpenMySQL(t)
		var handled sync.Map // pk -> true: a handler may run again after its transaction rolled back
		runQueryTimeout(t, db, sqldialect.MySQL(), &cqrsync.ReplicaModel{
			CQRSID: "djpeer_basic", NoDBOperations: true,
			OnSave: func(ctx context.Context, ex sqldialect.Executor, e *cqrsync.ReplicaEvent) error {
				if fmt.Sprint(e.PK) == "1" {
					_, err := ex.Exec(ctx, "SELECT SLEEP(2)")
					return err
				}
				handled.Store(fmt.Sprint(e.PK), true)
				return nil
			},
			OnDelete: func(context.Context, sqldialect.Executor, *cqrsync.ReplicaEvent) error { return nil },
		}, func() int {
			n := 0
			handled.Range(func(any, any) bool { n++; return true })
			return n
		})
	})
}

// runQueryTimeout applies, with a QueryTimeout of 200 ms, a SAVE of row 1
// that outlasts it and SAVEs of rows 2 and 3 behind it; applied counts the
// latter two in the replica.
func runQueryTimeout(t *testing.T, db *sql.DB, d sqldialect.Dialect, m *cqrsync.ReplicaModel, applied func() int) {
	m.QueryTimeout = 200 * time.Millisecond
	m.Retry = &cqrsync.RetryPolicy{MaxRetries: 1, Delay: func(int) time.Duration { return time.Millisecond }}
	b := setupConsumer(t, consumerOpts{workers: 1, batch: 10, noStart: true, db: db, dialect: d, model: m})
	now := time.Now()
	b.publishAll(t, saveBody("SAVE", 1, 1, 1, now), saveBody("SAVE", 2, 0, 2, now), saveBody("SAVE", 3, 0, 3, now))
	b.start(t)
	waitFor(t, 30*time.Second, func() bool { return b.broker.QueueLen(b.queue) == 0 }, "the queue to drain")
	if n := applied(); n != 2 {
		t.Fatalf("events 2 and 3 applied = %d, want both: the events behind a timed-out one must not wait for it", n)
	}
	if st := b.consumer.Stats(); st.Retried != 1 || st.DeadLettered != 1 {
		t.Fatalf("stats %+v, want 1 retry and 1 dead letter", st)
	}
	reasons := b.deadLetterReasons(t)
	if r := reasons["1"]; !strings.Contains(r, "QueryTimeout") {
		t.Fatalf("dead letters %v: want event 1 with a reason naming its QueryTimeout", reasons)
	}
}

// TestConsumerHandlerErrorsGoToDeadLetters: a custom handler's own errors
// are the event's failures whatever their words: one that says "deadlock"
// and one that is context.DeadlineExceeded go through the retry policy to
// the dead letters; the event after them is handled.
func TestConsumerHandlerErrorsGoToDeadLetters(t *testing.T) {
	t.Parallel()
	db := cqrsynctesting.OpenSQLite(t)
	var mu sync.Mutex
	handled := map[string]bool{} // a handler may run again after its transaction rolled back
	b := setupConsumer(t, consumerOpts{workers: 1, batch: 10, noStart: true, db: db, dialect: sqldialect.SQLite(), model: &cqrsync.ReplicaModel{
		CQRSID: "djpeer_basic", NoDBOperations: true,
		OnSave: func(_ context.Context, _ sqldialect.Executor, e *cqrsync.ReplicaEvent) error {
			switch fmt.Sprint(e.PK) {
			case "1":
				return errors.New("deadlock detected in my code")
			case "2":
				return context.DeadlineExceeded
			case "3":
				return io.ErrUnexpectedEOF // reading the handler's own input
			}
			mu.Lock()
			handled[fmt.Sprint(e.PK)] = true
			mu.Unlock()
			return nil
		},
		OnDelete: func(context.Context, sqldialect.Executor, *cqrsync.ReplicaEvent) error { return nil },
		Retry:    &cqrsync.RetryPolicy{MaxRetries: 2, Delay: func(int) time.Duration { return time.Millisecond }},
	}})
	now := time.Now()
	b.publishAll(t, saveBody("SAVE", 1, 0, 1, now), saveBody("SAVE", 2, 0, 2, now), saveBody("SAVE", 3, 0, 3, now), saveBody("SAVE", 4, 0, 4, now))
	b.start(t)
	waitFor(t, 30*time.Second, func() bool { return b.broker.QueueLen(b.queue) == 0 }, "the queue to drain (stats %+v)", b.consumer.Stats())
	mu.Lock()
	defer mu.Unlock()
	if len(handled) != 1 || !handled["4"] {
		t.Fatalf("handled %v, want only event 4", handled)
	}
	if st := b.consumer.Stats(); st.Retried != 6 || st.DeadLettered != 3 {
		t.Fatalf("stats %+v, want 6 retries (2 each) and 3 dead letters", st)
	}
	reasons := b.deadLetterReasons(t)
	for pk, want := range map[string]string{"1": "deadlock detected in my code", "2": "context deadline exceeded", "3": "unexpected EOF"} {
		if !strings.Contains(reasons[pk], want) {
			t.Errorf("dead letter of event %s: reason %q, want it to say %q", pk, reasons[pk], want)
		}
	}
	if strings.Contains(b.logs.String(), "database unavailable") {
		t.Error("a handler's error was logged as the database being unavailable")
	}
}

// TestConsumerLogsDeadlockAsDeadlock: a deadlock in the replica database is
// retried like an outage (the worker pauses, no retry or dead letter is
// spent), and logged as what it is, not as the database being unavailable.
func TestConsumerLogsDeadlockAsDeadlock(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	b := setupConsumer(t, consumerOpts{workers: 1, batch: 10, noStart: true, db: cqrsynctesting.OpenSQLite(t), dialect: sqldialect.SQLite(), model: &cqrsync.ReplicaModel{
		CQRSID: "djpeer_basic", NoDBOperations: true,
		OnSave: func(context.Context, sqldialect.Executor, *cqrsync.ReplicaEvent) error {
			if calls.Add(1) == 1 {
				return &mysql.MySQLError{Number: 1213, SQLState: [5]byte{'4', '0', '0', '0', '1'}, Message: "Deadlock found when trying to get lock; try restarting transaction"}
			}
			return nil
		},
		OnDelete: func(context.Context, sqldialect.Executor, *cqrsync.ReplicaEvent) error { return nil },
	}})
	b.publishAll(t, saveBody("SAVE", 1, 0, 1, time.Now()))
	b.start(t)
	waitFor(t, 30*time.Second, func() bool { return b.broker.QueueLen(b.queue) == 0 }, "the queue to drain")
	if st := b.consumer.Stats(); st.Applied != 1 || st.Retried != 0 || st.DeadLettered != 0 {
		t.Fatalf("stats %+v, want the event applied on the second try, with no retry or dead letter spent", st)
	}
	logs := b.logs.String()
	if !strings.Contains(logs, "retrying the batch after a deadlock") || strings.Contains(logs, "database unavailable") {
		t.Fatalf("logs do not call the deadlock a deadlock:\n%s", logs)
	}
}
