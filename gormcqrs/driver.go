package gormcqrs

import (
	"fmt"

	"gorm.io/gorm"

	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
)

// Driver returns the cqrsync driver on the *sql.DB under db, with the
// dialect of GORM's dialector ("postgres", "mysql" or "sqlite"): build the
// master, the relay or the replica of a GORM service on it, so that they
// share GORM's pool and transactions.
func Driver(db *gorm.DB) (*databasesql.Driver, error) {
	var d sqldialect.Dialect
	switch n := db.Dialector.Name(); n {
	case "postgres":
		d = sqldialect.Postgres()
	case "mysql":
		d = sqldialect.MySQL()
	case "sqlite":
		d = sqldialect.SQLite()
	default:
		return nil, fmt.Errorf("gormcqrs: GORM dialector %q has no cqrsync dialect: use PostgreSQL, MySQL/MariaDB or SQLite", n)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, fmt.Errorf("gormcqrs: the *sql.DB under GORM: %w", err)
	}
	return databasesql.New(sqlDB, d), nil
}
