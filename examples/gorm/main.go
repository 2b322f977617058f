// Command gorm is a GORM service whose writes reach a replica with no
// capture call in its code: the gormcqrs plugin captures every Create,
// Save, Updates, upsert, soft and hard Delete of its Account model into
// the outbox, a relay publishes them to RabbitMQ, and a consumer applies
// them to a GORM replica model in another database. It writes from
// several goroutines, then waits until the replica equals the master and
// prints the comparison; it exits 1 if they do not converge.
//
//	go run ./examples/gorm \
//	  -master 'postgres://postgres@127.0.0.1:5432/test?sslmode=disable' \
//	  -replica 'mysql://root@127.0.0.1:3306/test' \
//	  -amqp amqp://guest:guest@127.0.0.1:5672/
//
// Both databases must exist; the program creates its tables (account,
// account_copy, cqrsync's own) and the exchange and queue it is given.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/signal"
	"sync"
	"time"

	"gorm.io/driver/mysql"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/logger"

	"github.com/cqrsync/cqrsync"
	_ "github.com/cqrsync/cqrsync/config/mysql"    // mysql:// URLs
	_ "github.com/cqrsync/cqrsync/config/postgres" // postgres:// URLs
	"github.com/cqrsync/cqrsync/gormcqrs"
	"github.com/cqrsync/cqrsync/internal/dburl"
	"github.com/cqrsync/cqrsync/outbox"
	"github.com/cqrsync/cqrsync/transport/rabbitmq"
)

// Account is the master model: a plain GORM model with soft delete, and
// the two columns cqrsync keeps.
type Account struct {
	ID        int64  `gorm:"primaryKey"`
	Name      string `gorm:"size:100"`
	Balance   int64
	Status    string `gorm:"size:20"`
	DeletedAt gorm.DeletedAt
	gormcqrs.Revision
}

// AccountCopy is the replica model; its Owner column holds the master's
// name.
type AccountCopy struct {
	ID        int64  `gorm:"primaryKey;autoIncrement:false"`
	Owner     string `gorm:"size:100" cqrs:"name"`
	Balance   int64
	Status    string `gorm:"size:20"`
	DeletedAt *time.Time
	gormcqrs.Revision
}

// options are the command's flags.
type options struct {
	master, replica, amqp string
	exchange, queue       string
	writers, changes      int
	seed                  uint64
	timeout               time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.master, "master", os.Getenv("GORM_EXAMPLE_MASTER"), "master database URL (postgres:// or mysql://)")
	flag.StringVar(&o.replica, "replica", os.Getenv("GORM_EXAMPLE_REPLICA"), "replica database URL (postgres:// or mysql://)")
	flag.StringVar(&o.amqp, "amqp", "amqp://guest:guest@127.0.0.1:5672/", "RabbitMQ URL")
	flag.StringVar(&o.exchange, "exchange", "gorm_example", "RabbitMQ exchange")
	flag.StringVar(&o.queue, "queue", "gorm_example_replica", "the replica's queue")
	flag.IntVar(&o.writers, "writers", 4, "goroutines writing through GORM")
	flag.IntVar(&o.changes, "changes", 200, "changes to make")
	flag.Uint64Var(&o.seed, "seed", rand.Uint64(), "seed of the workload")
	flag.DurationVar(&o.timeout, "timeout", time.Minute, "how long to wait for the replica")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "gorm example:", err)
		os.Exit(1)
	}
}

// openGORM opens a database URL through GORM.
func openGORM(raw string) (*gorm.DB, error) {
	sqlDB, u, err := dburl.Open(raw)
	if err != nil {
		return nil, err
	}
	var d gorm.Dialector
	switch u.Kind {
	case "postgres":
		d = postgres.New(postgres.Config{Conn: sqlDB})
	case "mysql":
		d = mysql.New(mysql.Config{Conn: sqlDB})
	default:
		_ = sqlDB.Close()
		return nil, fmt.Errorf("%s: use a postgres:// or mysql:// URL", u.Redacted)
	}
	db, err := gorm.Open(d, &gorm.Config{Logger: logger.Discard})
	if err != nil {
		_ = sqlDB.Close()
		return nil, err
	}
	drv, err := gormcqrs.Driver(db)
	if err != nil {
		return nil, err
	}
	if err := drv.Dialect().Migrate(context.Background(), drv.Pool()); err != nil {
		return nil, err
	}
	return db, nil
}

func run(ctx context.Context, o options, out io.Writer) error {
	if o.master == "" || o.replica == "" {
		return errors.New("set -master and -replica")
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	masterDB, err := openGORM(o.master)
	if err != nil {
		return fmt.Errorf("master: %w", err)
	}
	replicaDB, err := openGORM(o.replica)
	if err != nil {
		return fmt.Errorf("replica: %w", err)
	}
	for _, db := range []*gorm.DB{masterDB, replicaDB} {
		if sqlDB, err := db.DB(); err == nil {
			defer sqlDB.Close()
		}
	}
	if err := masterDB.AutoMigrate(&Account{}); err != nil {
		return err
	}
	if err := replicaDB.AutoMigrate(&AccountCopy{}); err != nil {
		return err
	}

	tr, err := rabbitmq.New(ctx, &rabbitmq.Config{URL: o.amqp, Exchange: o.exchange, Logger: quiet})
	if err != nil {
		return err
	}
	defer tr.Close()

	// The master: the plugin captures through a Master on GORM's *sql.DB,
	// whose relay it wakes after each commit.
	masterDrv, err := gormcqrs.Driver(masterDB)
	if err != nil {
		return err
	}
	relay, err := outbox.NewRelay(masterDrv, &outbox.Config{Publisher: tr, Logger: quiet})
	if err != nil {
		return err
	}
	master, err := cqrsync.NewMaster(masterDrv, &cqrsync.MasterConfig{Relay: relay, AutoUpdateFields: true})
	if err != nil {
		return err
	}
	plugin := gormcqrs.New(master)
	if err := masterDB.Use(plugin); err != nil {
		return err
	}
	if err := plugin.Register(&Account{}, &cqrsync.MasterModel{CQRSID: "account", TrackedFields: []string{"status"}}); err != nil {
		return err
	}

	// The replica: a ReplicaModel derived from the GORM model.
	replicaDrv, err := gormcqrs.Driver(replicaDB)
	if err != nil {
		return err
	}
	replica, err := cqrsync.NewReplica(replicaDrv, &cqrsync.ReplicaConfig{Logger: quiet})
	if err != nil {
		return err
	}
	rm, err := gormcqrs.ReplicaModel(replicaDB, &AccountCopy{}, "account")
	if err != nil {
		return err
	}
	if err := replica.Register(rm); err != nil {
		return err
	}
	consumer, err := cqrsync.NewConsumer(&cqrsync.ConsumerConfig{Replica: replica, Subscriber: tr, Publisher: tr, Queue: o.queue, Workers: 4, Logger: quiet})
	if err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := consumer.Start(runCtx); err != nil {
		return err
	}
	defer consumer.Stop()
	<-consumer.Started()
	if err := relay.Start(runCtx); err != nil {
		return err
	}
	defer relay.Stop()

	start := time.Now()
	n, err := write(runCtx, masterDB, plugin, o)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "wrote %d changes through GORM from %d goroutines (seed %d) in %v\n", n, o.writers, o.seed, time.Since(start).Round(time.Millisecond))

	// Wait for the replica: poll the comparison until it holds.
	deadline := time.Now().Add(o.timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		m, r, err := snapshot(runCtx, masterDB, replicaDB)
		if err != nil {
			return err
		}
		if diff := compare(m, r); diff == "" {
			fmt.Fprintf(out, "converged: the replica's %d rows equal the master's (revisions and soft deletes included) after %v\n", len(r), time.Since(start).Round(time.Millisecond))
			return nil
		} else if time.Now().After(deadline) {
			return fmt.Errorf("the replica did not converge within %v: %s", o.timeout, diff)
		}
		select {
		case <-runCtx.Done():
			return runCtx.Err()
		case <-tick.C:
		}
	}
}

// write makes o.changes changes from o.writers goroutines, each a GORM
// call in its own transaction; a change that fails for a reason a retry
// cures (a deadlock, a concurrent delete) is retried.
func write(ctx context.Context, db *gorm.DB, plugin *gormcqrs.Plugin, o options) (int, error) {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		done int
	)
	for w := range o.writers {
		r := rand.New(rand.NewPCG(o.seed, uint64(w)))
		wg.Go(func() {
			for i := w; i < o.changes; i += o.writers {
				var err error
				for try := 0; try < 10; try++ {
					if err = change(ctx, db.WithContext(ctx), plugin, r); err == nil {
						break
					}
				}
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					done++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return done, errors.Join(errs...)
}

var errRollback = errors.New("rolled back on purpose")

// change makes one random change through GORM.
func change(ctx context.Context, db *gorm.DB, plugin *gormcqrs.Plugin, r *rand.Rand) error {
	var ids []int64
	if err := db.Model(&Account{}).Order("id").Pluck("id", &ids).Error; err != nil {
		return err
	}
	some := func() int64 {
		if len(ids) == 0 {
			return 0
		}
		return ids[r.IntN(len(ids))]
	}
	switch op := r.IntN(100); {
	case op < 30 || len(ids) < 3:
		return db.Create(&[]Account{{Name: fmt.Sprint("acct ", r.IntN(1000)), Balance: int64(r.IntN(100))}, {Name: "twin", Status: "new"}}).Error
	case op < 45:
		var a Account
		if err := db.First(&a, some()).Error; err != nil {
			return err
		}
		a.Name, a.Status = fmt.Sprint("saved ", r.IntN(1000)), "saved"
		return db.Save(&a).Error
	case op < 60:
		return db.Model(&Account{ID: some()}).Updates(map[string]any{"balance": gorm.Expr("balance + ?", r.IntN(10))}).Error
	case op < 67:
		return db.Model(&Account{}).Where("balance < ?", r.IntN(30)).Update("status", fmt.Sprint("low ", r.IntN(10))).Error
	case op < 75:
		return db.Clauses(clause.OnConflict{UpdateAll: true}).Create(&[]Account{{ID: some(), Name: "upserted", Balance: 1}}).Error
	case op < 85:
		return db.Delete(&Account{ID: some()}).Error // soft
	case op < 93:
		return db.Unscoped().Delete(&Account{ID: some()}).Error
	default:
		err := plugin.Transaction(db, func(tx *gorm.DB) error {
			if err := tx.Create(&Account{Name: "never"}).Error; err != nil {
				return err
			}
			if err := tx.Model(&Account{ID: some()}).Update("name", "never").Error; err != nil {
				return err
			}
			return errRollback
		})
		if errors.Is(err, errRollback) {
			return nil
		}
		return err
	}
}

// row is what the comparison looks at.
type row struct {
	Name, Status string
	Balance      int64
	Deleted      bool
	Revision     int64
}

// snapshot reads both tables.
func snapshot(ctx context.Context, masterDB, replicaDB *gorm.DB) (m, r map[int64]row, err error) {
	var as []Account
	if err := masterDB.WithContext(ctx).Unscoped().Find(&as).Error; err != nil {
		return nil, nil, err
	}
	var cs []AccountCopy
	if err := replicaDB.WithContext(ctx).Find(&cs).Error; err != nil {
		return nil, nil, err
	}
	m, r = map[int64]row{}, map[int64]row{}
	for _, a := range as {
		m[a.ID] = row{a.Name, a.Status, a.Balance, a.DeletedAt.Valid, a.CQRSRevision}
	}
	for _, c := range cs {
		r[c.ID] = row{c.Owner, c.Status, c.Balance, c.DeletedAt != nil, c.CQRSRevision}
	}
	return m, r, nil
}

// compare describes the first difference between the tables, "" if none.
func compare(m, r map[int64]row) string {
	if len(m) != len(r) {
		return fmt.Sprintf("the master has %d rows, the replica %d", len(m), len(r))
	}
	for id, mr := range m {
		if rr, ok := r[id]; !ok || rr != mr {
			return fmt.Sprintf("row %d: master %+v, replica %+v", id, mr, rr)
		}
	}
	return ""
}
