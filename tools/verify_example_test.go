package tools_test

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
	"github.com/cqrsync/cqrsync/tools"
)

// A drift check finds a replica row edited by hand at the master's
// revision, which the revision-based diff cannot see.
func ExampleVerify() {
	ctx := context.Background()
	open := func(rows string) *sql.DB {
		db, err := sql.Open("sqlite", ":memory:")
		if err != nil {
			panic(err)
		}
		db.SetMaxOpenConns(1) // one in-memory database
		for _, stmt := range []string{
			`CREATE TABLE account (id INTEGER PRIMARY KEY, cqrs_revision INTEGER NOT NULL DEFAULT 0, cqrs_updated TIMESTAMP NOT NULL, name TEXT NOT NULL)`,
			`INSERT INTO account VALUES ` + rows,
		} {
			if _, err := db.Exec(stmt); err != nil {
				panic(err)
			}
		}
		if err := sqldialect.SQLite().Migrate(ctx, sqldialect.FromSQL(db)); err != nil {
			panic(err)
		}
		return db
	}
	masterDB := open(`(1, 3, '2026-01-01 00:00:00', 'ann'), (2, 1, '2026-01-01 00:00:00', 'bob'), (3, 0, '2026-01-01 00:00:00', 'cy')`)
	replicaDB := open(`(1, 3, '2026-01-01 00:00:00', 'ann'), (2, 1, '2026-01-01 00:00:00', 'BOB (edited)'), (4, 0, '2026-01-01 00:00:00', 'gone')`)
	defer masterDB.Close()
	defer replicaDB.Close()

	master, _ := cqrsync.NewMaster(databasesql.New(masterDB, sqldialect.SQLite()), nil)
	_ = master.Register(&cqrsync.MasterModel{CQRSID: "account", Table: "account"})
	replica, _ := cqrsync.NewReplica(databasesql.New(replicaDB, sqldialect.SQLite()), nil)
	_ = replica.Register(&cqrsync.ReplicaModel{CQRSID: "account", Table: "account"})

	rep, err := tools.Verify(ctx,
		tools.NewLocalMaster(master, sqldialect.FromSQL(masterDB)),
		tools.NewLocalReplica(replica, sqldialect.FromSQL(replicaDB)),
		"account", nil)
	if err != nil {
		panic(err)
	}
	fmt.Println("fields:", rep.Fields)
	fmt.Println("differ:", rep.Differ, rep.DifferFields)
	fmt.Println("missing:", rep.Missing, "extra:", rep.Extra)
	// Output:
	// fields: [id cqrs_revision name]
	// differ: [2] [[name]]
	// missing: [3] extra: [4]
}
