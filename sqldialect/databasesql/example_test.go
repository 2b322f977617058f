package databasesql_test

import (
	"context"
	"database/sql"
	"fmt"
	"log"

	_ "modernc.org/sqlite"

	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
)

// A driver on a *sql.DB and its dialect: RunTx commits what its function
// wrote when the function succeeds.
func Example() {
	ctx := context.Background()
	db, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1) // one in-memory database
	drv := databasesql.New(db, sqldialect.SQLite())
	err = drv.RunTx(ctx, func(ctx context.Context, ex sqldialect.Executor) error {
		if err := drv.Dialect().Migrate(ctx, ex); err != nil {
			return err
		}
		_, err := ex.Exec(ctx, "CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT)")
		return err
	})
	if err != nil {
		log.Fatal(err)
	}
	n, err := drv.Pool().Exec(ctx, "INSERT INTO item (id, name) VALUES (1, 'one'), (2, 'two')")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("pipelined:", drv.Features().Pipeline)
	fmt.Println("inserted:", n)
	// Output:
	// pipelined: false
	// inserted: 2
}
