package pgwal_test

import (
	"context"
	"database/sql"
	"fmt"
	"log"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/outbox/pgwal"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
	"github.com/cqrsync/cqrsync/transport"
)

// A master that writes its events into the write-ahead log, and the relay
// that streams them to the broker. It needs a PostgreSQL server with
// wal_level = logical, so it is compiled, not run.
func Example() {
	ctx := context.Background()
	const url = "postgres://app@localhost:5432/app?sslmode=disable"
	db, err := sql.Open("pgx", url)
	if err != nil {
		log.Fatal(err)
	}
	var pub transport.Publisher // e.g. a *rabbitmq.Transport

	// Start the relay first: it creates the slot, and events captured
	// before the slot exists are not in it.
	relay, err := pgwal.NewRelay(&pgwal.Config{ConnString: url, Publisher: pub})
	if err != nil {
		log.Fatal(err)
	}
	if err := relay.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer relay.Stop()
	<-relay.Started()

	master, err := cqrsync.NewMaster(databasesql.New(db, sqldialect.Postgres()), &cqrsync.MasterConfig{Outbox: cqrsync.OutboxWAL})
	if err != nil {
		log.Fatal(err)
	}
	_ = master.Register(&cqrsync.MasterModel{CQRSID: "account", Table: "account"})
	err = cqrsync.RunTx(ctx, db, master, func(tx *sql.Tx) error {
		return master.Insert(ctx, tx, "account", map[string]any{"id": 1, "name": "Ada"})
	}) // the event is published once the transaction commits

	// Watch the slot: a relay that stays down makes PostgreSQL keep WAL.
	st, err := pgwal.ReadStatus(ctx, sqldialect.FromSQL(db), nil)
	if err == nil && st.Exists && !st.Active {
		log.Printf("no relay streams slot %s: %d bytes of WAL kept for it", st.Slot, st.RetainedBytes)
	}
}

// NewRelay reports every problem of its configuration at once.
func ExampleNewRelay() {
	_, err := pgwal.NewRelay(&pgwal.Config{Slot: "Billing-Outbox"})
	fmt.Println(err)
	// Output:
	// pgwal: Config.ConnString is empty: set the master database's URL
	// pgwal: Config.Publisher is nil: set a transport publisher
	// pgwal: Config.Slot "Billing-Outbox": use 1 to 63 lower-case letters, digits and underscores
}
