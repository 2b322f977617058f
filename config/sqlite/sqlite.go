// Package sqlite lets package config open sqlite: database URLs with
// modernc.org/sqlite (no cgo). Import it for its side effect:
//
//	import _ "github.com/cqrsync/cqrsync/config/sqlite"
//
// sqlite:///absolute/path/app.db and sqlite:relative/app.db open an
// existing file with a busy timeout, WAL journaling and immediate
// transactions; add ?mode=rwc to create it.
package sqlite

import (
	_ "modernc.org/sqlite" // database/sql driver "sqlite"

	"github.com/cqrsync/cqrsync/internal/dburl"
)

func init() {
	dburl.Register(&dburl.Kind{Name: "sqlite", Schemes: []string{"sqlite", "sqlite3", "file"}, Parse: dburl.ParseSQLite})
}
