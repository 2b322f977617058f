package postgres_test

import (
	"context"
	"testing"

	"github.com/cqrsync/cqrsync/config"
	_ "github.com/cqrsync/cqrsync/config/postgres"
	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/sqldialect"
)

// TestDriverPipelines: a postgres:// URL gives the commands (consume above
// all) a driver whose transactions are pipelined on the pgx connection.
func TestDriverPipelines(t *testing.T) {
	db, err := config.OpenDB(cqrsynctesting.PostgresDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.SQL.Close() })
	drv := db.Driver()
	if !drv.Features().Pipeline {
		t.Fatalf("driver %T does not pipeline", drv)
	}
	var deferred bool
	err = drv.RunTx(t.Context(), func(ctx context.Context, ex sqldialect.Executor) error {
		_, deferred = ex.(sqldialect.Deferrer)
		_, err := ex.Exec(ctx, "SELECT 1")
		return err
	})
	if err != nil || !deferred {
		t.Fatalf("RunTx = %v, Deferrer %v; want a pipelined transaction", err, deferred)
	}
}
