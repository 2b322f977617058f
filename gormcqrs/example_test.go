package gormcqrs_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/glebarez/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/gormcqrs"
)

// Account is a GORM model with the columns cqrsync keeps.
type Account struct {
	ID   int64
	Name string
	gormcqrs.Revision
}

// A GORM service whose writes are captured without a capture call: each
// commits its event to the outbox, which a relay (not started here) would
// publish.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "gormcqrs")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	db, err := gorm.Open(sqlite.Open("file:"+filepath.Join(dir, "master.db")), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		log.Fatal(err)
	}
	drv, err := gormcqrs.Driver(db) // cqrsync on GORM's *sql.DB
	if err != nil {
		log.Fatal(err)
	}
	defer drv.DB().Close()
	if err := drv.Dialect().Migrate(ctx, drv.Pool()); err != nil {
		log.Fatal(err)
	}
	if err := db.AutoMigrate(&Account{}); err != nil {
		log.Fatal(err)
	}

	master, err := cqrsync.NewMaster(drv, nil) // set MasterConfig.Relay to wake a relay
	if err != nil {
		log.Fatal(err)
	}
	plugin := gormcqrs.New(master)
	if err := db.Use(plugin); err != nil {
		log.Fatal(err)
	}
	if err := plugin.Register(&Account{}, &cqrsync.MasterModel{CQRSID: "account"}); err != nil {
		log.Fatal(err)
	}

	acc := Account{Name: "Ada"}
	db.Create(&acc)
	acc.Name = "Ada Lovelace"
	db.Save(&acc)
	db.Delete(&acc)

	rows, err := drv.DB().QueryContext(ctx, "SELECT body FROM cqrs_outbox ORDER BY id")
	if err != nil {
		log.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var body []byte
		if err := rows.Scan(&body); err != nil {
			log.Fatal(err)
		}
		p, err := cqrsync.DecodePayload(body, time.Now())
		if err != nil {
			log.Fatal(err)
		}
		rev, _ := p.InstanceData.Get(cqrsync.RevisionField)
		name, _ := p.InstanceData.Get("name")
		fmt.Println(p.SignalType, p.CQRSID, p.InstancePK, "revision", rev, name)
	}
	// Output:
	// SAVE account 1 revision 0 Ada
	// SAVE account 1 revision 1 Ada Lovelace
	// DELETE account 1 revision 2 <nil>
}
