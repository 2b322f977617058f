package sqldialect_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"

	_ "modernc.org/sqlite"

	"github.com/cqrsync/cqrsync/sqldialect"
)

// A dialect renders every statement cqrsync runs; conditions (a parsed
// filter) cross the seam as data, and their values are always bound.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "cqrsync-sqldialect-example-*")
	defer os.RemoveAll(dir)
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "app.db"))
	if err != nil {
		panic(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE account (id INTEGER PRIMARY KEY, name TEXT);
		INSERT INTO account VALUES (1, 'Ada'), (2, 'Alan'), (3, 'Grace')`); err != nil {
		panic(err)
	}
	d, ex := sqldialect.SQLite(), sqldialect.FromSQL(db)

	n, err := d.CountRows(ctx, ex, "account", []sqldialect.Cond{
		{Column: "name", Op: sqldialect.OpStartsWith, Values: []any{"a"}, Fold: true},
		{Column: "id", Op: sqldialect.OpLess, Values: []any{3}},
	})
	fmt.Println("names starting with a:", n, err)
	// What a schema check tells the user to run for a missing column.
	fmt.Println(d.AddVersionColumnSQL("account", "cqrs_revision"))
	// Output:
	// names starting with a: 2 <nil>
	// ALTER TABLE "account" ADD COLUMN "cqrs_revision" INTEGER NOT NULL DEFAULT 0
}
