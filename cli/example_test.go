package cli_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"

	_ "modernc.org/sqlite"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/cli"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
	"github.com/cqrsync/cqrsync/transport/memory"
)

// Example mounts the command tree in a service's own binary: the setup hands
// it the database, the models registered in Go and the broker, instead of a
// configuration file. Here a master service dumps its table.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "cqrsync-cli-example-*")
	defer os.RemoveAll(dir)
	db, _ := sql.Open("sqlite", "file:"+filepath.Join(dir, "master.db")+"?_pragma=busy_timeout(5000)")
	defer db.Close()
	_ = sqldialect.SQLite().Migrate(ctx, sqldialect.FromSQL(db))
	_, _ = db.Exec(`CREATE TABLE account (id INTEGER PRIMARY KEY, name TEXT NOT NULL,
		cqrs_revision INTEGER NOT NULL DEFAULT 0, cqrs_updated DATETIME)`)
	_, _ = db.Exec(`INSERT INTO account VALUES (1, 'Ada', 0, '2024-01-02 03:04:05+00:00'), (2, 'Grace', 3, '2024-01-02 03:04:06+00:00')`)
	broker := memory.NewBroker(nil)

	opts := &cli.Options{Setup: func(_ context.Context, req *cli.SetupRequest) (*cli.App, error) {
		master, err := cqrsync.NewMaster(databasesql.New(db, sqldialect.SQLite()), &cqrsync.MasterConfig{Logger: req.Logger})
		if err != nil {
			return nil, err
		}
		if err := master.Register(&cqrsync.MasterModel{CQRSID: "account", Table: "account"}); err != nil {
			return nil, err
		}
		return &cli.App{
			DB: db, Dialect: sqldialect.SQLite(), Master: master,
			OpenTransport: func(context.Context) (*cli.Transport, error) {
				return &cli.Transport{Publisher: broker.Publisher(), Subscriber: broker.Subscriber(), DeadLetters: broker}, nil
			},
		}, nil
	}}
	env := &cli.Env{In: os.Stdin, Out: os.Stdout, Err: os.Stdout}
	cli.Run(ctx, env, opts, []string{"bulk-dump", "--cqrs-id", "account", "-o", "-"})
	cli.Run(ctx, env, opts, []string{"bulk-dump", "--cqrs-id", "nope"})
	// Output:
	// account
	// {"id":1,"name":"Ada","cqrs_revision":0,"cqrs_updated":"2024-01-02 03:04:05+00:00"}
	// {"id":2,"name":"Grace","cqrs_revision":3,"cqrs_updated":"2024-01-02 03:04:06+00:00"}Done!
	// 2 instance(s) saved.
	// 2 instance(s) processed.
	// cqrsync: bulk-dump: --cqrs-id "nope" is not a master model here (registered: account)
}
