package cqrsync_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
	"github.com/cqrsync/cqrsync/transport"
	"github.com/cqrsync/cqrsync/transport/memory"
)

// longDoc is a replica table with a TEXT column txt and a larger text
// column big, and the most bytes each holds (0: no limit).
type longDoc struct {
	replicaDB
	txtType, bigType string
	txtMax, bigMax   int
}

func mysqlLongDoc() longDoc {
	return longDoc{
		replicaDB: replicaDB{
			dialect: sqldialect.MySQL(), timestamp: "DATETIME(6)",
			open: func(t *testing.T) *sql.DB { return cqrsynctesting.OpenMySQL(t) },
		},
		txtType: "TEXT", txtMax: 65535, bigType: "MEDIUMTEXT", bigMax: 1<<24 - 1,
	}
}

// setup opens the database with the table doc and a replica of it.
func (ld longDoc) setup(t *testing.T) (*sql.DB, *cqrsync.Replica) {
	t.Helper()
	db := ld.open(t)
	q := ld.dialect.QuoteIdent
	ddl := fmt.Sprintf("CREATE TABLE %s (%s BIGINT NOT NULL PRIMARY KEY, %s %s NULL, %s %s NULL, %s INTEGER NOT NULL, %s %s NOT NULL)",
		q("doc"), q("id"), q("txt"), ld.txtType, q("big"), ld.bigType, q("cqrs_revision"), q("cqrs_updated"), ld.timestamp)
	if _, err := db.ExecContext(t.Context(), ddl); err != nil {
		t.Fatalf("%s: %v", ddl, err)
	}
	replica, err := cqrsync.NewReplica(databasesql.New(db, ld.dialect), &cqrsync.ReplicaConfig{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := replica.Register(&cqrsync.ReplicaModel{CQRSID: "doc", Table: "doc"}); err != nil {
		t.Fatal(err)
	}
	return db, replica
}

// longText is n bytes of text: ASCII, or 4-byte UTF-8 characters after
// n%4 ASCII bytes.
func longText(n int, emoji bool) string {
	if !emoji {
		return strings.Repeat("a", n)
	}
	return strings.Repeat("a", n%4) + strings.Repeat("\U0001F600", n/4)
}

// docBody is a SAVE of doc row id with the given column values.
func docBody(t *testing.T, id int64, cols map[string]string) []byte {
	t.Helper()
	data := map[string]any{"id": id, "cqrs_revision": 0, "cqrs_updated": "2024-05-01T10:00:00.000000+00:00"}
	for k, v := range cols {
		data[k] = v
	}
	body, err := json.Marshal(map[string]any{
		"signal_type": "SAVE", "cqrs_id": "doc", "instance_data": data, "previous_data": nil,
		"instance_pk": id, "correlation_id": nil, "retries": 0, "expires": "2099-01-01T00:00:00+00:00", "meta": map[string]any{},
	})
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// wantDoc checks that row id holds cols byte for byte (ok) or is missing.
func wantDoc(t *testing.T, db *sql.DB, id int64, cols map[string]string, ok bool) {
	t.Helper()
	var txt, big []byte
	err := db.QueryRowContext(t.Context(), "SELECT txt, big FROM doc WHERE id = "+fmt.Sprint(id)).Scan(&txt, &big)
	if !ok {
		if err != sql.ErrNoRows {
			t.Errorf("row %d: %d and %d bytes stored (%v), want no row", id, len(txt), len(big), err)
		}
		return
	}
	if err != nil {
		t.Fatalf("row %d: %v", id, err)
	}
	for col, got := range map[string][]byte{"txt": txt, "big": big} {
		if want, set := cols[col]; set && !bytes.Equal(got, []byte(want)) {
			t.Errorf("row %d: %s holds %d bytes, want the %d sent, byte for byte", id, col, len(got), len(want))
		}
	}
}

// longDocCases are rows of doc at and past the limits: the values and
// whether they fit.
func (ld longDoc) cases() (rows []map[string]string, fits []bool) {
	fit := func(n, limit int) bool { return limit == 0 || n <= limit }
	for _, n := range []int{65535, 65536, 70000, 1 << 20} {
		for _, emoji := range []bool{false, true} {
			rows = append(rows, map[string]string{"txt": longText(n, emoji), "big": "b"}, map[string]string{"txt": "t", "big": longText(n, emoji)})
			fits = append(fits, fit(n, ld.txtMax), fit(n, ld.bigMax))
		}
	}
	return rows, fits
}

// runApplyLongValues applies rows with long values through ApplyBatch,
// several to a batch between short rows, and through Apply: those that fit
// are stored whole, those that do not fail with an error naming the column
// that is not retryable (it is the event's fault, not the database's).
func runApplyLongValues(t *testing.T, ld longDoc) {
	db, replica := ld.setup(t)
	ctx := t.Context()
	rows, fits := ld.cases()
	apply := func(batch bool, ids []int64, vals []map[string]string) error {
		var ps []*cqrsync.Payload
		for i, id := range ids {
			p, err := cqrsync.DecodePayload(docBody(t, id, vals[i]), time.Now())
			if err != nil {
				t.Fatal(err)
			}
			ps = append(ps, p)
		}
		return sqldialect.RunTx(ctx, db, func(ex sqldialect.Executor) error {
			if batch {
				_, err := replica.ApplyBatch(ctx, ex, ps)
				return err
			}
			_, err := replica.Apply(ctx, ex, ps[0])
			return err
		})
	}
	short := map[string]string{"txt": "s", "big": "s"}
	for i, vals := range rows {
		id := int64(10 * (i + 1))
		what := fmt.Sprintf("txt %d bytes, big %d bytes (fits %v)", len(vals["txt"]), len(vals["big"]), fits[i])
		for _, path := range []struct {
			batch bool
			ids   []int64
			vals  []map[string]string
		}{
			{false, []int64{id}, []map[string]string{vals}},
			{true, []int64{id + 1, id + 2, id + 3}, []map[string]string{short, vals, short}},
		} {
			err := apply(path.batch, path.ids, path.vals)
			at := path.ids[len(path.ids)/2]
			switch {
			case fits[i] && err != nil:
				t.Errorf("%s, batch %v: %v", what, path.batch, err)
			case !fits[i] && err == nil:
				t.Errorf("%s, batch %v: no error", what, path.batch)
			case !fits[i] && cqrsync.IsRetryable(err):
				t.Errorf("%s, batch %v: error %q is retryable; it is the event's fault", what, path.batch, err)
			case !fits[i] && !strings.Contains(err.Error(), "txt") && !strings.Contains(err.Error(), "big"):
				t.Errorf("%s, batch %v: error %q names no column", what, path.batch, err)
			}
			wantDoc(t, db, at, vals, fits[i])
		}
	}
}

func TestApplyLongValuesMySQL(t *testing.T) {
	t.Parallel()
	runApplyLongValues(t, mysqlLongDoc())
}

func TestApplyLongValuesPostgres(t *testing.T) {
	t.Parallel()
	runApplyLongValues(t, longDoc{
		replicaDB: replicaDB{
			dialect: sqldialect.Postgres(), timestamp: "TIMESTAMPTZ",
			open: func(t *testing.T) *sql.DB { return cqrsynctesting.OpenPostgres(t) },
		},
		txtType: "TEXT", bigType: "TEXT",
	})
}

func TestApplyLongValuesSQLite(t *testing.T) {
	t.Parallel()
	ld := longDoc{replicaDB: sqliteReplicaDB(), txtType: "TEXT", bigType: "TEXT"}
	runApplyLongValues(t, ld)
}

// TestConsumerDeadLettersTooLongValueMySQL sends a batch in which one event
// carries a value longer than its MariaDB TEXT column: the others are stored
// whole, the long one is retried, then dead-lettered with a reason naming
// the column, and nothing cut is stored.
func TestConsumerDeadLettersTooLongValueMySQL(t *testing.T) {
	t.Parallel()
	ld := mysqlLongDoc()
	db, replica := ld.setup(t)
	broker := memory.NewBroker(&memory.Config{})
	pub := broker.Publisher()
	const queue = "longdoc_replica"
	if err := broker.DeclareQueue(queue, "doc"); err != nil {
		t.Fatal(err)
	}
	sub := broker.Subscriber()
	t.Cleanup(func() { _ = sub.Close(); _ = pub.Close() })
	consumer, err := cqrsync.NewConsumer(&cqrsync.ConsumerConfig{
		Replica: replica, Subscriber: sub, Publisher: pub, Queue: queue, Workers: 1, BatchSize: 10,
		Retry:  cqrsync.RetryPolicy{MaxRetries: 1, Delay: func(int) time.Duration { return time.Millisecond }},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	rows := []map[string]string{
		{"txt": longText(65535, false), "big": longText(1<<20, true)},
		{"txt": longText(65535, true), "big": "b"},
		{"txt": longText(65536, true), "big": "b"}, // 1 byte too long
		{"txt": "t", "big": longText(70000, false)},
	}
	var msgs []transport.Message
	for i, vals := range rows {
		msgs = append(msgs, transport.Message{CQRSID: "doc", Body: docBody(t, int64(i+1), vals)})
	}
	if err := pub.Publish(t.Context(), msgs); err != nil {
		t.Fatal(err)
	}
	if err := consumer.Start(t.Context()); err != nil { // all four arrive in one batch
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = consumer.Stop() })
	cqrsynctesting.Eventually(t, 60*time.Second, "the queue to drain", func() bool { return broker.QueueLen(queue) == 0 })
	for i, vals := range rows {
		wantDoc(t, db, int64(i+1), vals, i != 2)
	}
	if st := consumer.Stats(); st.Applied != 3 || st.DeadLettered != 1 || st.Retried != 1 {
		t.Fatalf("stats = %+v, want 3 applied, 1 retry, 1 dead letter", st)
	}
	var reasons []string
	_, err = broker.ScanDeadLetters(t.Context(), transport.DeadLetterQueue(queue), func(_ context.Context, m *transport.Message) (transport.DeadLetterAction, error) {
		reasons = append(reasons, m.Headers[cqrsync.HeaderDeadLetterReason])
		if !bytes.Contains(m.Body, []byte(`"instance_pk":3`)) {
			t.Errorf("dead letter %.200s…, want the event of row 3", m.Body)
		}
		return transport.DeadLetterKeep, nil
	})
	// MariaDB says "Data too long for column 'txt'", or, when the cut
	// would split a character, "Incorrect string value … for column
	// `db`.`doc`.`txt`".
	if err != nil || len(reasons) != 1 || !strings.Contains(reasons[0], "'txt'") && !strings.Contains(reasons[0], "`txt`") {
		t.Fatalf("dead letter reasons = %q (%v), want one naming the column 'txt'", reasons, err)
	}
}
