// Package demo runs cqrsync end to end on embedded defaults: a master and a
// replica, each with its own SQLite database, joined by the in-memory
// transport or by a real broker named by URL (package broker: RabbitMQ,
// NATS JetStream, Kafka or an in-process kfake cluster). It is what
// `cqrsync demo` runs.
package demo

import (
	"cmp"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mathrand "math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // the demo's databases

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/internal/broker"
	"github.com/cqrsync/cqrsync/outbox"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
	"github.com/cqrsync/cqrsync/transport"
	"github.com/cqrsync/cqrsync/transport/memory"
)

// Options configures a demo run.
type Options struct {
	// Dir holds the two SQLite databases. Default: a new temporary directory,
	// removed afterwards.
	Dir string
	// Changes is the number of master changes to make. Default 3000.
	Changes int
	// Writers is the number of goroutines writing on the master. Default 4.
	Writers int
	// Workers is the number of consumer workers. Default 4.
	Workers int
	// Seed makes the workload reproducible. Default: random.
	Seed uint64
	// Transport is the broker's URL; its scheme picks the broker (see
	// [broker.Schemes]). Default "": the in-memory broker.
	Transport string
	// Name names the run's exchange (stream, topic prefix) and replica
	// queue on the broker. Default: "cqrsdemo_" and 12 random hex digits,
	// so runs on one server never meet. The run deletes them at the end,
	// when it fails or is cancelled too.
	Name string
	// Timeout bounds the wait for the replica to catch up. Default 60 s.
	Timeout time.Duration
	// Logger receives the library's logs. Default: warnings to stderr.
	Logger *slog.Logger
	// AfterSync, when set, runs after the replica caught up and before the
	// comparison, with the replica database (tests corrupt a row here).
	AfterSync func(ctx context.Context, replica *sql.DB) error
}

// Result is what a demo run did.
type Result struct {
	Creates, Updates, Deletes int64
	Rows                      int // rows compared
	Differences               []string
	CommitElapsed             time.Duration // first commit to last commit
	SyncElapsed               time.Duration // first commit to replica caught up
	Consumer                  cqrsync.ConsumerStats
	Seed                      uint64
	Transport                 string // the broker: its version and redacted URL
	Name                      string // the run's exchange and queue
}

// Converged reports whether the replica equals the master.
func (r *Result) Converged() bool { return len(r.Differences) == 0 }

// ErrDiverged is returned when the replica does not equal the master.
var ErrDiverged = errors.New("demo: the replica does not equal the master")

const (
	masterDDL = `CREATE TABLE customer (
		id            INTEGER PRIMARY KEY,
		cqrs_revision INTEGER NOT NULL DEFAULT 0,
		cqrs_updated  DATETIME,
		name          TEXT NOT NULL,
		email         TEXT,
		balance       NUMERIC(14,2) NOT NULL DEFAULT 0,
		active        BOOLEAN NOT NULL DEFAULT 1,
		birthday      DATE,
		tags          JSON
	)`
	replicaDDL = `CREATE TABLE customer_copy (
		id            INTEGER PRIMARY KEY,
		full_name     TEXT NOT NULL,
		balance       NUMERIC(14,2) NOT NULL,
		active        BOOLEAN NOT NULL,
		birthday      DATE,
		tags          JSON,
		cqrs_revision INTEGER NOT NULL,
		cqrs_updated  DATETIME NOT NULL
	)`
	// connectTimeout bounds opening the broker when ctx has no deadline.
	connectTimeout = 10 * time.Second
)

// Validate checks the options without opening anything: a --transport
// whose scheme names no broker is an error matching
// [broker.ErrUnsupported].
func (o *Options) Validate() error {
	if o.Transport == "" {
		return nil
	}
	if err := broker.Check(o.Transport); err != nil {
		return fmt.Errorf("demo: --transport: %w (or leave it out for the in-memory broker)", err)
	}
	return nil
}

// Run runs the demo and writes a plain-words report to out. It returns
// ErrDiverged (with the result) when the replica differs from the master.
func Run(ctx context.Context, opts Options, out io.Writer) (*Result, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts.Changes = cmp.Or(opts.Changes, 3000)
	opts.Writers = cmp.Or(opts.Writers, 4)
	opts.Workers = cmp.Or(opts.Workers, 4)
	opts.Timeout = cmp.Or(opts.Timeout, 60*time.Second)
	if opts.Seed == 0 {
		opts.Seed = mathrand.Uint64()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	if opts.Dir == "" {
		dir, err := os.MkdirTemp("", "cqrsync-demo-*")
		if err != nil {
			return nil, fmt.Errorf("demo: temporary directory: %w", err)
		}
		defer os.RemoveAll(dir)
		opts.Dir = dir
	} else if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("demo: --dir: %w", err)
	}

	masterDB, err := openSQLite(ctx, filepath.Join(opts.Dir, "master.db"), masterDDL)
	if err != nil {
		return nil, err
	}
	defer masterDB.Close()
	replicaDB, err := openSQLite(ctx, filepath.Join(opts.Dir, "replica.db"), replicaDDL)
	if err != nil {
		return nil, err
	}
	defer replicaDB.Close()
	if opts.Name == "" {
		opts.Name = newName()
	}
	l, err := openLink(ctx, opts)
	if err != nil {
		return nil, err
	}
	defer func() {
		// Clean-up deletes the run's exchange and queues, also after a
		// failure or a cancel (Ctrl-C): the deferred stops of the consumer
		// and the relay have already run.
		if cerr := l.close(); cerr != nil {
			opts.Logger.Warn("demo: clean-up of the broker failed", slog.String("name", opts.Name), slog.Any("error", cerr))
		}
	}()
	queue := opts.Name
	fmt.Fprintf(out, "master  database: %s (table customer)\nreplica database: %s (table customer_copy)\ntransport: %s, exchange and queue %q\n",
		filepath.Join(opts.Dir, "master.db"), filepath.Join(opts.Dir, "replica.db"), l.describe, queue)

	dialect := sqldialect.SQLite()
	pub := l.pub

	// Master side: capture in the writers' transactions, relay to the broker.
	masterDrv := databasesql.New(masterDB, dialect)
	relay, err := outbox.NewRelay(masterDrv, &outbox.Config{Publisher: pub, Logger: opts.Logger})
	if err != nil {
		return nil, err
	}
	master, err := cqrsync.NewMaster(masterDrv, &cqrsync.MasterConfig{Logger: opts.Logger, Relay: relay})
	if err != nil {
		return nil, err
	}
	err = master.Register(&cqrsync.MasterModel{
		CQRSID: "customer", Table: "customer",
		Fields: []string{"id", "name", "balance", "active", "birthday", "tags"}, // email stays private
		Types:  map[string]cqrsync.ValueType{"balance": cqrsync.TypeDecimal},
	})
	if err != nil {
		return nil, err
	}

	// Replica side: consume into customer_copy, renaming name to full_name.
	replica, err := cqrsync.NewReplica(databasesql.New(replicaDB, dialect), &cqrsync.ReplicaConfig{Logger: opts.Logger})
	if err != nil {
		return nil, err
	}
	err = replica.Register(&cqrsync.ReplicaModel{
		CQRSID: "customer", Table: "customer_copy",
		Mapping: map[string]string{"id": "id", "name": "full_name", "balance": "balance", "active": "active", "birthday": "birthday", "tags": "tags"},
		Types:   map[string]cqrsync.ValueType{"balance": cqrsync.TypeDecimal},
	})
	if err != nil {
		return nil, err
	}
	consumer, err := cqrsync.NewConsumer(&cqrsync.ConsumerConfig{
		Replica: replica, Subscriber: l.sub, Publisher: l.subPub, Queue: queue,
		Workers: opts.Workers, Logger: opts.Logger,
	})
	if err != nil {
		return nil, err
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := consumer.Start(runCtx); err != nil {
		return nil, err
	}
	defer consumer.Stop()
	<-consumer.Started()
	if err := relay.Start(runCtx); err != nil {
		return nil, err
	}
	defer relay.Stop()

	res := &Result{Seed: opts.Seed, Transport: l.describe, Name: opts.Name}
	fmt.Fprintf(out, "\nwriting %d changes from %d goroutines (seed %d)...\n", opts.Changes, opts.Writers, opts.Seed)
	start := time.Now()
	if err := writeWorkload(runCtx, masterDB, master, opts, res); err != nil {
		return res, err
	}
	res.CommitElapsed = time.Since(start)

	waitCtx, waitCancel := context.WithTimeout(runCtx, opts.Timeout)
	defer waitCancel()
	if err := waitCaughtUp(waitCtx, relay, l.depth, queue, consumer); err != nil {
		if ctx.Err() != nil {
			return res, fmt.Errorf("demo: stopped while waiting for the replica: %w", err)
		}
		return res, fmt.Errorf("demo: the replica did not catch up within %v: %w", opts.Timeout, err)
	}
	// The counters say every event was settled; the tables must agree too
	// before the run reports a time. Until the deadline, a difference is
	// taken for an event still on its way; then compare reports it.
	for {
		var probe Result
		if err := compare(ctx, masterDB, replicaDB, &probe); err != nil {
			return res, err
		}
		if probe.Converged() || waitCtx.Err() != nil {
			break
		}
		select {
		case <-waitCtx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
	res.SyncElapsed = time.Since(start)
	res.Consumer = consumer.Stats()

	if opts.AfterSync != nil {
		if err := opts.AfterSync(ctx, replicaDB); err != nil {
			return res, err
		}
	}
	if err := compare(ctx, masterDB, replicaDB, res); err != nil {
		return res, err
	}
	report(out, res)
	if !res.Converged() {
		return res, ErrDiverged
	}
	return res, nil
}

func openSQLite(ctx context.Context, path, ddl string) (*sql.DB, error) {
	_ = os.Remove(path)
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("demo: open %s: %w", path, err)
	}
	if _, err := db.ExecContext(ctx, ddl); err != nil {
		db.Close()
		return nil, fmt.Errorf("demo: create table in %s: %w", path, err)
	}
	if err := sqldialect.SQLite().Migrate(ctx, sqldialect.FromSQL(db)); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// writeWorkload makes opts.Changes changes from opts.Writers goroutines: a
// mix of creates, updates and deletes, each in its own transaction.
func writeWorkload(ctx context.Context, db *sql.DB, master *cqrsync.Master[*sql.Tx], opts Options, res *Result) error {
	var (
		mu     sync.Mutex
		live   []int64 // ids that exist, for updates and deletes
		next   atomic.Int64
		budget atomic.Int64
	)
	budget.Store(int64(opts.Changes))
	pick := func(r *mathrand.Rand, remove bool) (int64, bool) {
		mu.Lock()
		defer mu.Unlock()
		if len(live) == 0 {
			return 0, false
		}
		i := r.IntN(len(live))
		id := live[i]
		if remove {
			live[i] = live[len(live)-1]
			live = live[:len(live)-1]
		}
		return id, true
	}
	var wg sync.WaitGroup
	errs := make(chan error, opts.Writers)
	for w := range opts.Writers {
		r := mathrand.New(mathrand.NewPCG(opts.Seed, uint64(w)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for budget.Add(-1) >= 0 {
				if err := change(ctx, db, master, r, &next, pick, &mu, &live, res); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := ctx.Err(); err != nil {
		// A cancel (Ctrl-C) rolls back the writers' open transactions, and
		// they fail in whatever step they were: say what happened instead.
		return fmt.Errorf("demo: stopped while writing on the master: %w", err)
	}
	return <-errs
}

func change(ctx context.Context, db *sql.DB, master *cqrsync.Master[*sql.Tx], r *mathrand.Rand, next *atomic.Int64,
	pick func(*mathrand.Rand, bool) (int64, bool), mu *sync.Mutex, live *[]int64, res *Result,
) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("demo: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	op := r.IntN(100)
	var created int64
	switch {
	case op < 15:
		id, ok := pick(r, true)
		if !ok {
			goto create
		}
		if err := master.Delete(ctx, tx, "customer", id); err != nil {
			return err
		}
		atomic.AddInt64(&res.Deletes, 1)
	case op < 60:
		id, ok := pick(r, false)
		if !ok {
			goto create
		}
		_, err := tx.ExecContext(ctx, `UPDATE customer SET name = ?, balance = balance + ?, active = ?, tags = ? WHERE id = ?`,
			fmt.Sprintf("customer %d v%d", id, r.IntN(1000)), fmt.Sprintf("%d.%02d", r.IntN(100), r.IntN(100)), r.IntN(2) == 1,
			fmt.Sprintf(`{"tier":%q,"score":%d}`, []string{"gold", "silver", "bronze"}[r.IntN(3)], r.IntN(100)), id)
		if err != nil {
			return fmt.Errorf("demo: update: %w", err)
		}
		// The row may have been deleted by another writer meanwhile.
		if err := master.Update(ctx, tx, "customer", id); err != nil {
			if errors.Is(err, cqrsync.ErrRowNotFound) {
				return nil
			}
			return err
		}
		atomic.AddInt64(&res.Updates, 1)
	default:
		goto create
	}
	return commit(master, tx, 0, mu, live)

create:
	created = next.Add(1)
	if _, err := tx.ExecContext(ctx, `INSERT INTO customer (id, name, email, balance, active, birthday, tags) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		created, fmt.Sprintf("customer %d", created), fmt.Sprintf("c%d@example.com", created),
		fmt.Sprintf("%d.%02d", r.IntN(10000), r.IntN(100)), true,
		time.Date(1950+r.IntN(50), time.Month(1+r.IntN(12)), 1+r.IntN(28), 0, 0, 0, 0, time.UTC).Format(time.DateOnly),
		`{"tier":"new","tags":["demo","caf\u00e9"]}`); err != nil {
		return fmt.Errorf("demo: insert: %w", err)
	}
	if err := master.Create(ctx, tx, "customer", created); err != nil {
		return err
	}
	atomic.AddInt64(&res.Creates, 1)
	return commit(master, tx, created, mu, live)
}

func commit(master *cqrsync.Master[*sql.Tx], tx *sql.Tx, created int64, mu *sync.Mutex, live *[]int64) error {
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("demo: commit: %w", err)
	}
	master.Committed()
	if created != 0 {
		mu.Lock()
		*live = append(*live, created)
		mu.Unlock()
	}
	return nil
}

// waitCaughtUp waits, twice in a row, until the outbox is empty, the
// queue holds nothing waiting, the consumer has settled (applied, dropped
// or dead-lettered) at least as many events as the relay published, and it
// holds none in flight. On a timeout it says what was still pending.
func waitCaughtUp(ctx context.Context, relay *outbox.Relay, depth func(string) (int, error), queue string, consumer *cqrsync.Consumer) error {
	quiet := 0
	for quiet < 2 {
		// The outbox is read on a context of its own, so that a timeout
		// can still say how many events it holds.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		st, err := relay.Stats(sctx)
		cancel()
		if err != nil {
			return err
		}
		waiting, derr := depth(queue)
		published := relay.Published()
		cs := consumer.Stats()
		settled := cs.Applied + cs.Dropped + cs.DeadLettered
		inFlight := cs.Received - settled - cs.Retried
		if st.Rows == 0 && derr == nil && waiting == 0 && settled >= published && inFlight <= 0 {
			quiet++
		} else {
			quiet = 0
			relay.Wake()
		}
		select {
		case <-ctx.Done():
			queued := fmt.Sprint(waiting)
			if derr != nil {
				queued = "an unknown number (" + derr.Error() + ")"
			}
			return fmt.Errorf("%d events still in the outbox, %s waiting in queue %s, %d in flight in the consumer; %d of %d published events settled: %w",
				st.Rows, queued, queue, max(inFlight, 0), settled, published, ctx.Err())
		case <-consumer.Done():
			return errors.New("the consumer stopped")
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// link is the run's connection to its broker: the relay's publisher, the
// consumer's subscriber and publisher (retries, dead letters), the queue
// depth, and the clean-up.
type link struct {
	pub      transport.Publisher
	sub      transport.Subscriber
	subPub   transport.Publisher
	depth    func(queue string) (int, error)
	describe string
	close    func() error
}

// openLink connects to opts.Transport, or to a new in-memory broker when
// it is empty.
func openLink(ctx context.Context, opts Options) (*link, error) {
	if opts.Transport == "" {
		mem := memory.NewBroker(&memory.Config{Logger: opts.Logger})
		pub, sub := mem.Publisher(), mem.Subscriber()
		return &link{
			pub: pub, sub: sub, subPub: pub, describe: "in-memory broker",
			depth: func(q string) (int, error) { return mem.QueueLen(q), nil },
			close: func() error { return errors.Join(sub.Close(), pub.Close()) },
		}, nil
	}
	octx, cancel := ctx, context.CancelFunc(func() {})
	if _, ok := ctx.Deadline(); !ok {
		octx, cancel = context.WithTimeout(ctx, connectTimeout)
	}
	defer cancel()
	br, err := broker.Open(octx, opts.Transport, opts.Name, opts.Logger)
	if err != nil {
		return nil, fmt.Errorf("demo: --transport: %w", err)
	}
	l := &link{depth: br.Depth, describe: br.Version() + " at " + br.Redacted()}
	var closers []func() error
	l.close = func() error {
		var errs []error
		for i := len(closers) - 1; i >= 0; i-- {
			errs = append(errs, closers[i]())
		}
		return errors.Join(errs...)
	}
	closers = append(closers, br.Close)
	br.Track(opts.Name, "dead_letter_"+opts.Name)
	master, err := br.Transport(octx, "demo master")
	if err != nil {
		return nil, errors.Join(fmt.Errorf("demo: connect the master to %s: %w", br.Redacted(), err), l.close())
	}
	closers = append(closers, master.Close)
	replica, err := br.Transport(octx, "demo replica")
	if err != nil {
		return nil, errors.Join(fmt.Errorf("demo: connect the replica to %s: %w", br.Redacted(), err), l.close())
	}
	closers = append(closers, replica.Close)
	l.pub, l.sub, l.subPub = master, replica, replica
	return l, nil
}

// newName returns a name of the run's own for its exchange and queue.
func newName() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "cqrsdemo_" + hex.EncodeToString(b)
}

// compare checks the replica against the master row by row, on every synced
// field, through the same wire formatting the events use.
func compare(ctx context.Context, masterDB, replicaDB *sql.DB, res *Result) error {
	masterRows, err := readTable(ctx, masterDB, `SELECT id, name, balance, active, birthday, tags, cqrs_revision FROM customer ORDER BY id`)
	if err != nil {
		return err
	}
	replicaRows, err := readTable(ctx, replicaDB, `SELECT id, full_name, balance, active, birthday, tags, cqrs_revision FROM customer_copy ORDER BY id`)
	if err != nil {
		return err
	}
	res.Rows = len(masterRows)
	for id, m := range masterRows {
		r, ok := replicaRows[id]
		switch {
		case !ok:
			res.Differences = append(res.Differences, fmt.Sprintf("customer %d: missing on the replica", id))
		case r != m:
			res.Differences = append(res.Differences, fmt.Sprintf("customer %d: master %s, replica %s", id, m, r))
		}
	}
	for id := range replicaRows {
		if _, ok := masterRows[id]; !ok {
			res.Differences = append(res.Differences, fmt.Sprintf("customer %d: on the replica but deleted on the master", id))
		}
	}
	slices.Sort(res.Differences)
	return nil
}

var columnTypes = []cqrsync.ValueType{cqrsync.TypeInt, cqrsync.TypeString, cqrsync.TypeDecimal, cqrsync.TypeBool, cqrsync.TypeDate, cqrsync.TypeJSON, cqrsync.TypeInt}

// readTable reads rows as canonical JSON text of their wire values, keyed
// by id.
func readTable(ctx context.Context, db *sql.DB, query string) (map[int64]string, error) {
	rows, err := db.QueryContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("demo: compare: %w", err)
	}
	defer rows.Close()
	out := map[int64]string{}
	raw := make([]any, len(columnTypes))
	ptrs := make([]any, len(raw))
	for i := range raw {
		ptrs[i] = &raw[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, fmt.Errorf("demo: compare: %w", err)
		}
		vals := make([]any, len(raw))
		for i, t := range columnTypes {
			if vals[i], err = cqrsync.WireValue(t, raw[i]); err != nil {
				return nil, fmt.Errorf("demo: compare: %w", err)
			}
		}
		text, err := cqrsync.AppendJSON(nil, vals)
		if err != nil {
			return nil, fmt.Errorf("demo: compare: %w", err)
		}
		out[vals[0].(int64)] = string(text)
	}
	return out, rows.Err()
}

func report(out io.Writer, res *Result) {
	total := res.Creates + res.Updates + res.Deletes
	rate := func(n int64, d time.Duration) string {
		if d <= 0 {
			return "-"
		}
		return fmt.Sprintf("%.0f", float64(n)/d.Seconds())
	}
	fmt.Fprintf(out, "committed %d changes (%d creates, %d updates, %d deletes) in %v: %s changes/s\n",
		total, res.Creates, res.Updates, res.Deletes, res.CommitElapsed.Round(time.Millisecond), rate(total, res.CommitElapsed))
	fmt.Fprintf(out, "replica caught up %v after the first commit: %s changes/s end to end\n",
		res.SyncElapsed.Round(time.Millisecond), rate(total, res.SyncElapsed))
	c := res.Consumer
	fmt.Fprintf(out, "consumer: %d events received, %d applied, %d dropped as duplicate or stale, %d retried, %d dead-lettered\n",
		c.Received, c.Applied, c.Dropped, c.Retried, c.DeadLettered)
	if res.Converged() {
		fmt.Fprintf(out, "converged: the replica equals the master (%d rows compared field by field)\n", res.Rows)
		return
	}
	fmt.Fprintf(out, "DIVERGED: %d difference(s) between master and replica (%d master rows):\n", len(res.Differences), res.Rows)
	for i, d := range res.Differences {
		if i == 20 {
			fmt.Fprintf(out, "  ... and %d more\n", len(res.Differences)-20)
			break
		}
		fmt.Fprintf(out, "  %s\n", d)
	}
}
