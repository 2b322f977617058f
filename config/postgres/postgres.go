// Package postgres lets package config open postgres:// and postgresql://
// database URLs with the pgx driver. Import it for its side effect:
//
//	import _ "github.com/cqrsync/cqrsync/config/postgres"
//
// The URL goes to pgx unchanged, so every libpq parameter pgx knows works
// (postgres://user:password@host:5432/db?sslmode=disable).
package postgres

import (
	"database/sql"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"

	"github.com/cqrsync/cqrsync/internal/dburl"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/pgxv5"
)

func init() {
	dburl.Register(&dburl.Kind{
		Name: "postgres", Schemes: []string{"postgres", "postgresql"}, Parse: dburl.ParsePostgres,
		// cqrsync's own transactions pipelined on the pgx connection.
		NewDriver: func(db *sql.DB) sqldialect.Driver[*sql.Tx] { return pgxv5.NewStdlib(db) },
	})
}
