package config_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/cli"
	"github.com/cqrsync/cqrsync/config"
	_ "github.com/cqrsync/cqrsync/config/sqlite" // opens the sqlite: URL
	"github.com/cqrsync/cqrsync/sqldialect"
)

// Example is a service whose replica models come from cqrsync.yaml and
// from Go: the file declares a copied table, Go adds a model with custom
// handlers. Mounted as the service's command tree, the commands see both.
func Example() {
	dir, _ := os.MkdirTemp("", "cqrsync-config-example-*")
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "cqrsync.yaml")
	_ = os.WriteFile(file, []byte(`
database:
  url: sqlite://`+filepath.Join(dir, "app.db")+`?mode=rwc
queue: billing
replicas:
  - cqrs_id: customer
    table: customer_copy
`), 0o600)

	invoices := &cqrsync.ReplicaModel{
		CQRSID: "invoice", NoDBOperations: true,
		OnSave: func(ctx context.Context, _ sqldialect.Executor, e *cqrsync.ReplicaEvent) error {
			fmt.Println("invoice saved:", e.PK)
			return nil
		},
		OnDelete: func(ctx context.Context, _ sqldialect.Executor, e *cqrsync.ReplicaEvent) error { return nil },
	}

	// Without the command tree: the file's models and the Go one.
	cfg, err := config.Load(file, nil)
	if err != nil {
		panic(err)
	}
	db, err := cfg.OpenDB()
	if err != nil {
		panic(err)
	}
	defer db.SQL.Close()
	replica, err := cfg.NewReplica(db.Driver(), nil, invoices)
	if err != nil {
		panic(err)
	}
	fmt.Println("replica models:", replica.Models())

	// The service's command tree (cli.Main(opts) in its main).
	opts := config.CLI(&config.CLIOpts{Replicas: []*cqrsync.ReplicaModel{invoices}})
	var out, errOut strings.Builder
	code := cli.Run(context.Background(), &cli.Env{Out: &out, Err: &errOut}, opts, []string{"--config", file, "migrate"})
	fmt.Print("migrate: exit ", code, ": ", errOut.String())
	// Output:
	// replica models: [customer invoice]
	// migrate: exit 0: cqrsync: sqlite database migrated
}
