package postgres_test

import (
	"fmt"

	"github.com/cqrsync/cqrsync/config"
	_ "github.com/cqrsync/cqrsync/config/postgres" // opens postgres:// URLs
)

// With the package imported, config opens postgres:// URLs with pgx. The
// handle connects on first use; the redacted URL is what logs show.
func Example() {
	db, err := config.OpenDB("postgres://app:secret@db.internal:5432/billing?sslmode=disable")
	if err != nil {
		panic(err)
	}
	defer db.SQL.Close()
	fmt.Println(db.Kind, db.Dialect.Name(), db.Redacted)
	// Output: postgres postgres postgres://app:xxxxx@db.internal:5432/billing?sslmode=disable
}
