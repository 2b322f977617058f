package pgxexec_test

import (
	"context"
	"log"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/pgxexec"
)

// New adapts a pgx pool (or connection, or pgx.Tx) to the Executor every
// dialect method takes. Programs usually get one from the pgxv5 driver
// instead (pgxv5.New(pool).Pool()).
func ExampleNew() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	if err := sqldialect.Postgres().Migrate(ctx, pgxexec.New(pool)); err != nil {
		log.Fatal(err)
	}
}
