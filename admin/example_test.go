package admin_test

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/admin"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
	"github.com/cqrsync/cqrsync/transport/memory"

	_ "modernc.org/sqlite"
)

// Example mounts the admin page of a master service under /cqrs/ in the
// service's own mux. Without credentials it is refused at construction.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "cqrsync-admin-example")
	defer os.RemoveAll(dir)
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "master.db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	drv := databasesql.New(db, sqldialect.SQLite())
	if err := sqldialect.SQLite().Migrate(ctx, sqldialect.FromSQL(db)); err != nil {
		log.Fatal(err)
	}
	master, _ := cqrsync.NewMaster(drv, nil)
	_ = master.Register(&cqrsync.MasterModel{CQRSID: "account", Table: "account"})
	broker := memory.NewBroker(nil)

	_, err = admin.New(&admin.Config{Master: master, MasterDB: drv})
	fmt.Println(err != nil)

	h, err := admin.New(&admin.Config{
		Token:  "an-example-token-of-24ch", // from your secret store
		Master: master, MasterDB: drv, Queue: "billing", DeadLetters: broker, Publisher: broker.Publisher(),
	})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/cqrs/", http.StripPrefix("/cqrs", h))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	resp, _ := http.Get(srv.URL + "/cqrs/outbox")
	resp.Body.Close()
	fmt.Println("without credentials:", resp.StatusCode)
	req, _ := http.NewRequest("GET", srv.URL+"/cqrs/outbox", nil)
	req.Header.Set("Authorization", "Bearer an-example-token-of-24ch")
	resp, _ = http.DefaultClient.Do(req)
	resp.Body.Close()
	fmt.Println("with the token:", resp.StatusCode)
	// Output:
	// true
	// without credentials: 401
	// with the token: 200
}
