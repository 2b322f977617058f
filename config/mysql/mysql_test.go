package mysql_test

import (
	"errors"
	"testing"

	_ "github.com/cqrsync/cqrsync/config/mysql"
	"github.com/cqrsync/cqrsync/internal/dburl"
)

// TestClientFoundRowsRefused: with clientFoundRows the server counts a
// matched row as changed, and the replica would take a dropped duplicate or
// stale event for an applied one.
func TestClientFoundRowsRefused(t *testing.T) {
	if _, err := dburl.Parse("mysql://u:secret@db:3306/app?clientFoundRows=true"); !errors.Is(err, dburl.ErrBadURL) {
		t.Fatalf("Parse with clientFoundRows=true = %v, want ErrBadURL", err)
	}
	db, err := dburl.Parse("mysql://u:secret@db:3306/app?clientFoundRows=false")
	if err != nil || db.Kind != "mysql" {
		t.Fatalf("Parse with clientFoundRows=false = %+v, %v", db, err)
	}
}
