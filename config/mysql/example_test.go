package mysql_test

import (
	"fmt"

	"github.com/cqrsync/cqrsync/config"
	_ "github.com/cqrsync/cqrsync/config/mysql" // opens mysql:// and mariadb:// URLs
)

// With the package imported, config opens mysql:// URLs with
// go-sql-driver/mysql. The handle connects on first use; the redacted URL
// is what logs show.
func Example() {
	db, err := config.OpenDB("mysql://app:secret@db.internal:3306/billing")
	if err != nil {
		panic(err)
	}
	defer db.SQL.Close()
	fmt.Println(db.Kind, db.Dialect.Name(), db.Redacted)
	// Output: mysql mysql mysql://app:xxxxx@db.internal:3306/billing
}
