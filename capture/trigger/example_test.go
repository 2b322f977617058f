package trigger_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/capture/trigger"
	"github.com/cqrsync/cqrsync/outbox"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
	"github.com/cqrsync/cqrsync/transport/memory"
)

// Example installs capture triggers on a PostgreSQL table, changes it with
// plain SQL, and publishes the change with a relay that renders the
// triggers' rows with the master's models. It needs a PostgreSQL server
// (CQRSYNC_POSTGRES_URL), so it is compiled, not run, by go test;
// TestTriggerCaptureExample in cmd/cqrsync runs the same with psql.
func Example() {
	ctx := context.Background()
	db, err := sql.Open("pgx", os.Getenv("CQRSYNC_POSTGRES_URL"))
	if err != nil {
		panic(err)
	}
	defer db.Close()
	drv := databasesql.New(db, sqldialect.Postgres())
	if err := sqldialect.Postgres().Migrate(ctx, drv.Pool()); err != nil {
		panic(err)
	}

	// The master's models: the relay renders the triggers' rows with them.
	master, _ := cqrsync.NewMaster(drv, nil)
	account := &cqrsync.MasterModel{CQRSID: "account", Table: "account", TrackedFields: []string{"name"}}
	_ = master.Register(account)
	if err := trigger.Install(ctx, drv, account); err != nil {
		panic(err) // the table lacks cqrs_revision or cqrs_updated, or migrate did not run
	}

	// Any writer, no cqrsync call: psql, a migration, another language.
	if _, err := db.ExecContext(ctx, `UPDATE account SET name = 'Ada Lovelace' WHERE id = 1`); err != nil {
		panic(err)
	}

	broker := memory.NewBroker(nil)
	pub := broker.Publisher()
	defer pub.Close()
	relay, _ := outbox.NewRelay(drv, &outbox.Config{Publisher: pub, Renderer: master})
	n, err := relay.RunOnce(ctx) // or relay.Start(ctx) in a service
	fmt.Println(n, err)
}

// ExampleStatus_String shows how capture status reads.
func ExampleStatus_String() {
	fmt.Println(trigger.Status{CQRSID: "account", Table: "account", Installed: true, Current: true})
	fmt.Println(trigger.Status{CQRSID: "invoice", Table: "invoice", Installed: true})
	fmt.Println(trigger.Status{CQRSID: "plan", Table: "plan"})
	// Output:
	// account (table account): installed
	// invoice (table invoice): installed, not current: run capture install again
	// plan (table plan): not installed
}
