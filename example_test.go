package cqrsync_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/outbox"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
	"github.com/cqrsync/cqrsync/transport/memory"
)

// Example shows the whole path on embedded defaults: a change captured in
// the master's transaction, relayed from the outbox through the in-memory
// broker, and applied to the replica's own table.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "cqrsync-example-*")
	defer os.RemoveAll(dir)
	open := func(name, ddl string) *sql.DB {
		db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, name)+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
		if err != nil {
			panic(err)
		}
		if _, err := db.Exec(ddl); err != nil {
			panic(err)
		}
		if err := sqldialect.SQLite().Migrate(ctx, sqldialect.FromSQL(db)); err != nil {
			panic(err)
		}
		return db
	}
	masterDB := open("master.db", `CREATE TABLE account (id INTEGER PRIMARY KEY, name TEXT NOT NULL, secret TEXT,
		cqrs_revision INTEGER NOT NULL DEFAULT 0, cqrs_updated DATETIME)`)
	defer masterDB.Close()
	replicaDB := open("replica.db", `CREATE TABLE account_copy (id INTEGER PRIMARY KEY, name TEXT NOT NULL,
		cqrs_revision INTEGER NOT NULL, cqrs_updated DATETIME NOT NULL)`)
	defer replicaDB.Close()

	broker := memory.NewBroker(nil)
	pub := broker.Publisher()
	defer pub.Close()

	// The master service: capture, outbox, relay.
	relay, _ := outbox.NewRelay(databasesql.New(masterDB, sqldialect.SQLite()), &outbox.Config{Publisher: pub})
	// Relay: the master wakes it after each commit (RunTx, Committed).
	master, _ := cqrsync.NewMaster(databasesql.New(masterDB, sqldialect.SQLite()), &cqrsync.MasterConfig{Relay: relay})
	_ = master.Register(&cqrsync.MasterModel{CQRSID: "account", Table: "account", Fields: []string{"id", "name"}})
	if err := master.Check(ctx, sqldialect.FromSQL(masterDB)); err != nil {
		panic(err) // names every missing table or column, and what to run
	}
	_ = relay.Start(ctx)
	defer relay.Stop()

	// The replica service: consumer and replica model.
	replica, _ := cqrsync.NewReplica(databasesql.New(replicaDB, sqldialect.SQLite()), nil)
	_ = replica.Register(&cqrsync.ReplicaModel{CQRSID: "account", Table: "account_copy"})
	if err := replica.Check(ctx, sqldialect.FromSQL(replicaDB)); err != nil {
		panic(err)
	}
	consumer, _ := cqrsync.NewConsumer(&cqrsync.ConsumerConfig{
		Replica: replica, Subscriber: broker.Subscriber(), Publisher: pub, Queue: "billing",
	})
	_ = consumer.Start(ctx)
	defer consumer.Stop()
	<-consumer.Started()

	// A change on the master, captured in its own transaction; the event
	// exists from the commit on, and RunTx then wakes the relay. The
	// context collects the change's read-your-writes token.
	wctx, toks := cqrsync.CollectTokens(ctx)
	err := cqrsync.RunTx(wctx, masterDB, master, func(tx *sql.Tx) error {
		if _, err := tx.Exec(`INSERT INTO account (id, name, secret) VALUES (1, 'Ada', 'hunter2')`); err != nil {
			return err
		}
		return master.Create(wctx, tx, "account", 1)
	})
	if err != nil {
		panic(err)
	}

	// Wait for the replica to have it: the consumer's batch wakes the wait.
	tok := toks.All()[0]
	waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := replica.WaitFor(waitCtx, tok); err != nil {
		panic(err)
	}
	var name string
	var rev int
	if err := replicaDB.QueryRow(`SELECT name, cqrs_revision FROM account_copy WHERE id = 1`).Scan(&name, &rev); err != nil {
		panic(err)
	}
	fmt.Printf("token %s: replica has account 1: %s at revision %d\n", tok, name, rev)
	// Output: token account.0.1: replica has account 1: Ada at revision 0
}

// ExampleParseToken reads a read-your-writes token's text form, as
// Token.String writes it: a text key travels as base64url after "~".
func ExampleParseToken() {
	for _, s := range []string{"account.3.42", "order.0.~QS0x"} {
		tok, err := cqrsync.ParseToken(s)
		if err != nil {
			panic(err)
		}
		fmt.Printf("%s revision %d key %#v\n", tok.CQRSID, tok.Revision, tok.PK)
	}
	fmt.Println(cqrsync.Token{CQRSID: "order", PK: "A-1", Revision: 0})
	// Output:
	// account revision 3 key 42
	// order revision 0 key "A-1"
	// order.0.~QS0x
}

// ExampleMaster_Insert writes a row and captures its creation in one call:
// the event is in the outbox, in the same transaction, and leaves with the
// commit (a rollback would drop both).
func ExampleMaster_Insert() {
	ctx := context.Background()
	db, master, done := exampleAccounts()
	defer done()

	tx, _ := db.BeginTx(ctx, nil)
	if err := master.Insert(ctx, tx, "account", map[string]any{"id": 1, "name": "Ada"}); err != nil {
		panic(err)
	}
	_ = tx.Commit()

	var body string
	_ = db.QueryRow(`SELECT body FROM cqrs_outbox`).Scan(&body)
	fmt.Println(body[:strings.Index(body, `,"previous_data"`)])
	// Output: {"signal_type":"SAVE","cqrs_id":"account","instance_data":{"id":1,"name":"Ada","cqrs_revision":0,"cqrs_updated":"2026-11-23 12:00:00+00:00"}
}

// UpdateRow changes a row and captures the change in one statement (on
// SQLite and PostgreSQL), where an UPDATE followed by Update takes two.
func ExampleMaster_UpdateRow() {
	ctx := context.Background()
	db, master, done := exampleAccounts()
	defer done()
	if _, err := db.Exec(`INSERT INTO account (id, name) VALUES (1, 'Ada')`); err != nil {
		panic(err)
	}

	tx, _ := db.BeginTx(ctx, nil)
	if err := master.UpdateRow(ctx, tx, "account", 1, map[string]any{"name": "Ada Lovelace"}); err != nil {
		panic(err)
	}
	_ = tx.Commit()

	var body string
	_ = db.QueryRow(`SELECT body FROM cqrs_outbox`).Scan(&body)
	fmt.Println(body[:strings.Index(body, `,"previous_data"`)])
	// Output: {"signal_type":"SAVE","cqrs_id":"account","instance_data":{"id":1,"name":"Ada Lovelace","cqrs_revision":1,"cqrs_updated":"2026-11-23 12:00:00+00:00"}
}

// exampleAccounts opens a migrated SQLite master with an account table and
// a Master for it whose clock stands at 2026-11-23 12:00 UTC; done removes
// it.
func exampleAccounts() (*sql.DB, *cqrsync.Master[*sql.Tx], func()) {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "cqrsync-example-*")
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "master.db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		panic(err)
	}
	done := func() { _ = db.Close(); _ = os.RemoveAll(dir) }
	if _, err := db.Exec(`CREATE TABLE account (id INTEGER PRIMARY KEY, name TEXT NOT NULL,
		cqrs_revision INTEGER NOT NULL DEFAULT 0, cqrs_updated DATETIME)`); err != nil {
		panic(err)
	}
	if err := sqldialect.SQLite().Migrate(ctx, sqldialect.FromSQL(db)); err != nil {
		panic(err)
	}
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	master, _ := cqrsync.NewMaster(databasesql.New(db, sqldialect.SQLite()), &cqrsync.MasterConfig{Now: func() time.Time { return now }})
	_ = master.Register(&cqrsync.MasterModel{CQRSID: "account", Table: "account"})
	return db, master, done
}

// ExampleReplica_CheckContract compares a replica's table with what the
// master publishes, before any event: the replica here reads the name
// into an integer column, and has a NOT NULL column nothing fills.
func ExampleReplica_CheckContract() {
	ctx := context.Background()
	db, master, done := exampleAccounts()
	defer done()
	schema, err := master.Schema(ctx, sqldialect.FromSQL(db))
	if err != nil {
		panic(err)
	}
	// The document travels as JSON (cqrsync schema, cqrsync check).
	var doc strings.Builder
	_ = schema.WriteJSON(&doc)
	schema, _ = cqrsync.ReadSchema(strings.NewReader(doc.String()))

	if _, err := db.Exec(`CREATE TABLE account_copy (id INTEGER PRIMARY KEY, name INTEGER, region TEXT NOT NULL,
		cqrs_revision INTEGER NOT NULL, cqrs_updated DATETIME NOT NULL)`); err != nil {
		panic(err)
	}
	replica, _ := cqrsync.NewReplica(databasesql.New(db, sqldialect.SQLite()), nil)
	_ = replica.Register(&cqrsync.ReplicaModel{CQRSID: "account", Table: "account_copy"})
	report, err := replica.CheckContract(ctx, sqldialect.FromSQL(db), schema)
	if err != nil {
		panic(err)
	}
	for _, f := range report.Findings {
		fmt.Println(f)
	}
	// Output:
	// refused: account.name: master TEXT (string) into replica INTEGER (int): only text that reads as int is taken, other values fail their event (change the column's type)
	// refused: account → region: column region is NOT NULL without a default and no field of the master fills it: every SAVE fails (map a field to it, or give it a default)
}
