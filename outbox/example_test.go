package outbox_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"time"

	_ "modernc.org/sqlite"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/outbox"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
	"github.com/cqrsync/cqrsync/transport"
	"github.com/cqrsync/cqrsync/transport/memory"
)

// A change captured in the master's transaction waits in the outbox until
// the relay publishes it; RunOnce is one pass of what Start does in the
// background.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "cqrsync-outbox-example-*")
	defer os.RemoveAll(dir)
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "master.db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		panic(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE account (id INTEGER PRIMARY KEY, name TEXT NOT NULL,
		cqrs_revision INTEGER NOT NULL DEFAULT 0, cqrs_updated DATETIME)`); err != nil {
		panic(err)
	}
	drv := databasesql.New(db, sqldialect.SQLite())
	if err := drv.Dialect().Migrate(ctx, drv.Pool()); err != nil {
		panic(err)
	}

	broker := memory.NewBroker(nil)
	sub := broker.Subscriber()
	defer sub.Close()
	s, err := sub.Subscribe(ctx, &transport.SubscribeParams{Queue: "billing", CQRSIDs: []string{"account"}})
	if err != nil {
		panic(err)
	}
	defer s.Close()
	pub := broker.Publisher()
	defer pub.Close()

	relay, err := outbox.NewRelay(drv, &outbox.Config{Publisher: pub})
	if err != nil {
		panic(err)
	}
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	master, err := cqrsync.NewMaster(drv, &cqrsync.MasterConfig{Now: func() time.Time { return now }})
	if err != nil {
		panic(err)
	}
	_ = master.Register(&cqrsync.MasterModel{CQRSID: "account", Table: "account"})

	tx, _ := db.BeginTx(ctx, nil)
	if err := master.Insert(ctx, tx, "account", map[string]any{"id": 1, "name": "Ada"}); err != nil {
		panic(err)
	}
	_ = tx.Commit()

	n, err := relay.RunOnce(ctx)
	fmt.Println("published:", n, err)
	d := <-s.Deliveries()
	fmt.Printf("%s: %.79s…\n", d.CQRSID, d.Body)
	_ = s.Ack(ctx, d.ID)
	stats, _ := relay.Stats(ctx)
	fmt.Println("left in the outbox:", stats.Rows)
	// Output:
	// published: 1 <nil>
	// account: {"signal_type":"SAVE","cqrs_id":"account","instance_data":{"id":1,"name":"Ada",…
	// left in the outbox: 0
}
