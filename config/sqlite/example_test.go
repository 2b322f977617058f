package sqlite_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/cqrsync/cqrsync/config"
	_ "github.com/cqrsync/cqrsync/config/sqlite" // opens sqlite: URLs
)

// With the package imported, config opens sqlite: URLs; ?mode=rwc creates
// the file.
func Example() {
	dir, _ := os.MkdirTemp("", "cqrsync-sqlite-example-*")
	defer os.RemoveAll(dir)
	db, err := config.OpenDB("sqlite:" + filepath.Join(dir, "app.db") + "?mode=rwc")
	if err != nil {
		panic(err)
	}
	defer db.SQL.Close()
	var one int
	if err := db.SQL.QueryRow(`SELECT 1`).Scan(&one); err != nil {
		panic(err)
	}
	fmt.Println(db.Kind, db.Dialect.Name(), one)
	// Output: sqlite sqlite 1
}
