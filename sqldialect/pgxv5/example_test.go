package pgxv5_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/pgxv5"
)

// A driver on a pgx pool: the Postgres dialect, and transactions that are
// pipelined (the Executor RunTx passes is a sqldialect.Deferrer).
func Example() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	drv := pgxv5.New(pool)
	fmt.Println("pipelined:", drv.Features().Pipeline)
	err = drv.RunTx(ctx, func(ctx context.Context, ex sqldialect.Executor) error {
		return drv.Dialect().Migrate(ctx, ex)
	})
	if err != nil {
		log.Fatal(err)
	}
}
