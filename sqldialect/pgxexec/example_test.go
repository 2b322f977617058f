package pgxexec_test

import (
	"context"
	"database/sql"
	"fmt"
	"log"

	_ "modernc.org/sqlite"

	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/pgxexec"
)

// RunTx runs a function in one transaction and commits it when the
// function succeeds. On a *sql.DB opened with pgx's stdlib driver
// (sql.Open("pgx", url)) the Executor is a pipelined PipelineTx and
// implements sqldialect.Deferrer; on any other driver, as with SQLite
// here, it is an ordinary database/sql transaction.
func ExampleRunTx() {
	ctx := context.Background()
	db, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1) // one in-memory database
	if _, err := db.ExecContext(ctx, "CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT)"); err != nil {
		log.Fatal(err)
	}
	err = pgxexec.RunTx(ctx, db, func(ex sqldialect.Executor) error {
		_, pipelined := ex.(sqldialect.Deferrer)
		fmt.Println("pipelined:", pipelined)
		_, err := ex.Exec(ctx, "INSERT INTO item (id, name) VALUES (1, 'one'), (2, 'two')")
		return err
	})
	if err != nil {
		log.Fatal(err)
	}
	var n int
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM item").Scan(&n); err != nil {
		log.Fatal(err)
	}
	fmt.Println("rows:", n)
	// Output:
	// pipelined: false
	// rows: 2
}
