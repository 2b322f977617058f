// Package bench measures a complete cqrsync pipeline on real servers — master
// database → outbox → relay → RabbitMQ → consumer → replica database, all in
// one process — next to the raw limits of the same servers measured in the
// same run. It is what `cqrsync bench` runs; BENCHMARKS.md explains the
// figures.
//
// # Phases
//
// A run first measures the raw limits (plain INSERT+COMMIT on the master,
// the broker's confirmed publish and consume rates, batched upserts on the
// replica), then runs the pipeline in up to three kinds of phase:
//
//   - throughput: Changes changes as fast as the writers go, with the relay
//     and the consumer running; it reports the master's commit rate, the
//     end-to-end rate and the latency under that load;
//   - drain: Drain changes written with the relay and the consumer stopped,
//     then the relay started (outbox → broker rate), then the consumer
//     (backlog drain rate, and the process's memory during the drain);
//   - steady: for each of Rates, changes paced at that rate for Duration,
//     reporting the commit → visible latency percentiles.
//
// # Latency
//
// Every row carries commit_us, the time the writer wrote it, just before
// capture and commit; the writer also records when its commit returned. On
// the replica, the model's OnSave/OnDelete hooks mark each applied event in
// the apply transaction, and the replica's connections (see probe.go) stamp
// those marks with the time that transaction's commit returned: the moment
// the row became visible. "commit → visible" is the difference between the
// two commit returns, on one clock.
package bench

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
	"math"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/hook"
	"github.com/cqrsync/cqrsync/outbox"
	"github.com/cqrsync/cqrsync/outbox/pgwal"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
)

// Options configures a run. Zero fields take the defaults of WithDefaults.
type Options struct {
	// MasterDB and ReplicaDB name the databases: a URL (postgres://…,
	// mysql://user:pass@host:port/db, sqlite:path) or a kind (postgres,
	// mysql, mariadb, sqlite) whose URL comes from CQRSYNC_POSTGRES_URL or
	// CQRSYNC_MYSQL_URL. Default "postgres" for both. Each run creates its
	// own schema (PostgreSQL), database (MySQL) or file (SQLite) and drops it
	// at the end.
	MasterDB, ReplicaDB string
	// Transport is the broker's URL; its scheme picks the broker (see
	// [RegisterBroker]): amqp:// or amqps:// for RabbitMQ. Default
	// CQRSYNC_AMQP_URL, else DefaultAMQPURL. Each run declares its own
	// exchange and queues and deletes them at the end.
	Transport string

	// Changes is the size of the throughput phase; 0 skips it.
	Changes int
	// Drain is the size of the drain phase; 0 skips it.
	Drain int
	// Rates are the steady phases' rates, in changes per second.
	Rates []float64
	// Duration is the length of each steady phase. Default 10 s.
	Duration time.Duration
	// Warmup is the start of each steady phase left out of its latency
	// figures. Default 1 s (0 when Short).
	Warmup time.Duration

	// Mix is the workload's share of creates, updates and deletes.
	// Default 60:30:10.
	Mix Mix
	// RowBytes is the payload column's width in bytes. Default 256.
	RowBytes int
	// Writers is the number of concurrent master connections. Default 8.
	Writers int
	// TxRows is the number of changes per master transaction. Default 1.
	TxRows int
	// Insert makes creates go through Master.Insert (the row written and
	// captured by one INSERT … RETURNING) instead of the writer's INSERT
	// followed by Master.Create, and updates through Master.UpdateRow
	// instead of the writer's UPDATE followed by Master.Update.
	Insert bool
	// FillTxRows is the number of changes per master transaction while the
	// drain phase fills the outbox (only the queued events matter there).
	// Default 100.
	FillTxRows int
	// Workers, BatchSize and Prefetch configure the consumer. Defaults 4,
	// 100 and the consumer's own default, max(1001, 2 × Workers × BatchSize).
	Workers, BatchSize, Prefetch int
	// RelayBatch is the relay's batch size. Default 500 (the relay's own).
	RelayBatch int
	// Outbox is the master's outbox: "table" (default) or "wal" (PostgreSQL
	// masters only: capture into the write-ahead log, relayed from a
	// replication slot of the run's own by package outbox/pgwal).
	Outbox string
	// BatchWait is the consumer's ConsumerConfig.BatchWait. Default 0.
	BatchWait time.Duration

	// Hooks runs the pipeline with the Prometheus and OpenTelemetry hooks
	// on (hook/promhook and hook/otelhook on master, relay and consumer,
	// spans exported to nowhere, metrics gathered every second).
	Hooks bool
	// HooksSample is the share of traces the hooks record (head sampling,
	// parent-based: an event's publish and apply follow its capture).
	// Default 1: every event traced.
	HooksSample float64
	// HooksRounds, when positive, replaces the throughput phase by a
	// warm-up round and 2 × HooksRounds throughput rounds of Changes
	// changes each, with the hooks off and on in turn (off, on, on, off, …),
	// and reports the overhead of the hooks from the medians of both sides.
	HooksRounds int
	// SkipRaw skips the raw limits.
	SkipRaw bool
	// RawDuration is how long each raw database figure runs. Default 3 s.
	RawDuration time.Duration
	// RawMessages is the number of messages of the raw broker figures.
	// Default: as many as the largest phase, between 10,000 and 100,000.
	RawMessages int

	// Timeout bounds each phase's wait for the replica. Default 5 min.
	Timeout time.Duration
	// CPUProfile, when set, is a file that receives a CPU profile of the
	// pipeline phases (not of the raw limits).
	CPUProfile string
	// Seed makes the workload reproducible. Default random.
	Seed uint64

	// Logger receives the library's logs. Default: warnings to stderr.
	Logger *slog.Logger
	// Progress receives one line per step. Default io.Discard.
	Progress io.Writer
}

// ShortOptions is the tiny workload of --short: every phase, a few seconds
// in all, for CI.
func ShortOptions(o Options) Options {
	o.Changes = cmp.Or(o.Changes, 400)
	o.Drain = cmp.Or(o.Drain, 400)
	if len(o.Rates) == 0 {
		o.Rates = []float64{200}
	}
	o.Duration = cmp.Or(o.Duration, time.Second)
	if o.Warmup == 0 {
		o.Warmup = -1 // none
	}
	o.RawDuration = cmp.Or(o.RawDuration, 300*time.Millisecond)
	o.RawMessages = cmp.Or(o.RawMessages, 1000)
	o.Timeout = cmp.Or(o.Timeout, time.Minute)
	return o
}

// WithDefaults returns a copy of o with zero fields set to their defaults.
func (o Options) WithDefaults() Options {
	o.MasterDB = cmp.Or(o.MasterDB, Postgres)
	o.ReplicaDB = cmp.Or(o.ReplicaDB, Postgres)
	o.Transport = cmp.Or(o.Transport, os.Getenv("CQRSYNC_AMQP_URL"), DefaultAMQPURL)
	o.Duration = cmp.Or(o.Duration, 10*time.Second)
	o.Warmup = cmp.Or(o.Warmup, time.Second)
	if o.Warmup < 0 {
		o.Warmup = 0
	}
	if o.Mix == (Mix{}) {
		o.Mix = Mix{Create: 60, Update: 30, Delete: 10}
	}
	o.RowBytes = cmp.Or(o.RowBytes, 256)
	o.Writers = cmp.Or(o.Writers, 8)
	o.TxRows = cmp.Or(o.TxRows, 1)
	o.FillTxRows = cmp.Or(o.FillTxRows, 100)
	o.Workers = cmp.Or(o.Workers, 4)
	o.BatchSize = cmp.Or(o.BatchSize, 100)
	o.Prefetch = cmp.Or(o.Prefetch, max(1001, 2*o.Workers*o.BatchSize))
	o.RelayBatch = cmp.Or(o.RelayBatch, 500)
	o.Outbox = cmp.Or(o.Outbox, string(cqrsync.OutboxTable))
	o.HooksSample = cmp.Or(o.HooksSample, 1)
	o.RawDuration = cmp.Or(o.RawDuration, 3*time.Second)
	if o.RawMessages == 0 {
		o.RawMessages = min(max(o.Changes, o.Drain, 10_000), 100_000)
	}
	o.Timeout = cmp.Or(o.Timeout, 5*time.Minute)
	if o.Seed == 0 {
		o.Seed = randSeed()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	return o
}

// Validate reports every problem with o (after WithDefaults) at once.
func (o *Options) Validate() error {
	var errs []error
	if o.Changes < 0 || o.Drain < 0 {
		errs = append(errs, errors.New("bench: --changes and --drain must not be negative"))
	}
	if o.Changes == 0 && o.Drain == 0 && len(o.Rates) == 0 {
		errs = append(errs, errors.New("bench: nothing to run: set --changes, --drain or --rate"))
	}
	for _, r := range o.Rates {
		if r <= 0 {
			errs = append(errs, fmt.Errorf("bench: --rate %v: rates must be positive", r))
		}
	}
	if o.HooksSample < 0 || o.HooksSample > 1 {
		errs = append(errs, fmt.Errorf("bench: --hooks-sample %v: give a share between 0 and 1", o.HooksSample))
	}
	if o.HooksRounds < 0 {
		errs = append(errs, errors.New("bench: --hooks-rounds must not be negative"))
	}
	if o.HooksRounds > 0 && o.Changes == 0 {
		errs = append(errs, errors.New("bench: --hooks-rounds compares throughput rounds: set --changes"))
	}
	if o.Writers < 1 || o.TxRows < 1 || o.FillTxRows < 1 || o.Workers < 1 || o.BatchSize < 1 || o.Prefetch < 1 || o.RelayBatch < 1 || o.RowBytes < 16 {
		errs = append(errs, errors.New("bench: --writers, --tx-rows, --fill-tx-rows, --workers, --batch, --prefetch and --relay-batch must be at least 1, --row-bytes at least 16"))
	}
	if mode, err := cqrsync.ParseOutboxMode(o.Outbox); err != nil {
		errs = append(errs, fmt.Errorf("bench: --outbox %q: use table or wal", o.Outbox))
	} else if mt, err := parseTarget(o.MasterDB); mode == cqrsync.OutboxWAL && err == nil && mt.kind != Postgres {
		errs = append(errs, fmt.Errorf("bench: --outbox wal needs a PostgreSQL master, not %s", mt.kind))
	}
	if o.Prefetch > 65535 {
		errs = append(errs, fmt.Errorf("bench: --prefetch %d: AMQP allows at most 65535", o.Prefetch))
	}
	for _, s := range []string{o.MasterDB, o.ReplicaDB} {
		if _, err := parseTarget(s); err != nil {
			errs = append(errs, err)
		}
	}
	if o.MasterDB == o.ReplicaDB && strings.HasPrefix(o.MasterDB, "sqlite:") && len(o.MasterDB) > len("sqlite:") {
		errs = append(errs, errors.New("bench: --master-db and --replica-db name the same SQLite file: give two files"))
	}
	return errors.Join(errs...)
}

func randSeed() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	var s uint64
	for _, x := range b {
		s = s<<8 | uint64(x)
	}
	return s | 1
}

// pipeline is one run's wiring.
type pipeline struct {
	opts Options
	out  io.Writer // progress

	mdb, rdb     *database
	masterDB     *sql.DB       // through probe connections
	replicaDrv   sqldialect.DB // the consumer's driver, through probe connections
	rawReplicaDB *sql.DB
	br           Broker

	pubTr, subTr Transport
	master       *cqrsync.Master[*sql.Tx]
	relay        relay
	consumer     *cqrsync.Consumer
	stopListen   func()

	rec       *recorder
	masterSt  *stmtStats   // the master pool's statements (writers, relay)
	replicaSt *stmtStats   // the consumer's statements
	seq       atomic.Int64 // the last probe sequence number handed out
	committed atomic.Int64 // events committed on the master, all phases
	writers   []*writer

	id, cqrsID, queue, exchange string
	insertSQL, updateSQL        string

	relayOn, consumerOn bool
	obs                 *observers // the hooks of --hooks and --hooks-rounds; nil without
}

const table = "bench_item"

// relay is what the run uses of its relay: an *outbox.Relay or, with
// --outbox wal, a *pgwal.Relay.
type relay interface {
	Start(ctx context.Context) error
	Started() <-chan struct{}
	Stop() error
	Published() int64
}

// Run runs the benchmark and returns its report. The report is returned
// with an error too, as far as the run got.
func Run(ctx context.Context, opts Options) (rep *Report, err error) {
	opts = opts.WithDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	mt, _ := parseTarget(opts.MasterDB)
	rt, _ := parseTarget(opts.ReplicaDB)
	p := &pipeline{opts: opts, out: opts.Progress, rec: newRecorder(), masterSt: newStmtStats(), replicaSt: newStmtStats()}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	p.id = hex.EncodeToString(b)
	p.cqrsID = "bench_" + p.id
	p.queue = "cqrsbench_" + p.id
	p.exchange = "cqrsbench_" + p.id

	rep = &Report{Setup: p.setup(mt, rt)}
	defer func() {
		if p.consumer != nil {
			st := p.consumer.Stats()
			rep.Consumer = ConsumerCounts{Received: st.Received, Applied: st.Applied, Dropped: st.Dropped, Retried: st.Retried, DeadLettered: st.DeadLettered}
		}
	}()
	// Clean-up runs even when ctx is cancelled (Ctrl-C).
	cleanCtx := context.WithoutCancel(ctx)
	var cleanups []func() error
	defer func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			if cerr := cleanups[i](); cerr != nil {
				opts.Logger.Warn("bench: clean-up failed", slog.Any("error", cerr))
			}
		}
	}()

	p.logf("creating schema/database %s on the master and %s on the replica", "cqrsbench_m_"+p.id, "cqrsbench_r_"+p.id)
	if p.mdb, err = mt.create(ctx, "cqrsbench_m_"+p.id); err != nil {
		return rep, err
	}
	cleanups = append(cleanups, func() error {
		tctx, cancel := context.WithTimeout(cleanCtx, 30*time.Second)
		defer cancel()
		return p.mdb.drop(tctx)
	})
	if p.rdb, err = rt.create(ctx, "cqrsbench_r_"+p.id); err != nil {
		return rep, err
	}
	cleanups = append(cleanups, func() error {
		tctx, cancel := context.WithTimeout(cleanCtx, 30*time.Second)
		defer cancel()
		return p.rdb.drop(tctx)
	})
	rep.Setup.MasterVersion, rep.Setup.ReplicaVersion = p.mdb.version, p.rdb.version

	probedMaster, err := p.mdb.openProbed(opts.Writers+4, nil, p.masterSt)
	if err != nil {
		return rep, err
	}
	p.masterDB = probedMaster.db
	cleanups = append(cleanups, probedMaster.close)
	if p.rawReplicaDB, err = p.rdb.open(opts.Workers + 2); err != nil {
		return rep, err
	}
	cleanups = append(cleanups, p.rawReplicaDB.Close)
	probedReplica, err := p.rdb.openProbed(opts.Workers+2, p.rec, p.replicaSt)
	if err != nil {
		return rep, err
	}
	p.replicaDrv = probedReplica.drv
	cleanups = append(cleanups, probedReplica.close)
	if err := p.createTables(ctx); err != nil {
		return rep, err
	}

	if p.br, err = openBroker(ctx, opts.Transport, p.exchange, opts.Logger); err != nil {
		return rep, err
	}
	cleanups = append(cleanups, p.br.Close)
	rep.Setup.BrokerVersion = p.br.Version()
	rep.Setup.BrokerURL = p.br.Redacted()

	if !opts.SkipRaw {
		if rep.Raw, err = p.rawLimits(ctx); err != nil {
			return rep, fmt.Errorf("bench: raw limits: %w", err)
		}
	}

	stop, err := p.startPipeline(ctx)
	cleanups = append(cleanups, stop)
	if err != nil {
		return rep, err
	}

	if opts.CPUProfile != "" {
		f, err := os.Create(opts.CPUProfile)
		if err != nil {
			return rep, fmt.Errorf("bench: --cpuprofile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			_ = f.Close()
			return rep, fmt.Errorf("bench: --cpuprofile: %w", err)
		}
		cleanups = append(cleanups, func() error { pprof.StopCPUProfile(); return f.Close() })
	}

	switch {
	case opts.Changes > 0 && opts.HooksRounds > 0:
		if rep.Hooks, err = p.compareHooks(ctx, opts.Changes, opts.HooksRounds); err != nil {
			return rep, err
		}
	case opts.Changes > 0:
		if rep.Throughput, err = p.throughput(ctx, opts.Changes); err != nil {
			return rep, err
		}
	}
	if opts.Drain > 0 {
		if rep.Drain, err = p.drain(ctx, opts.Drain); err != nil {
			return rep, err
		}
	}
	for _, rate := range opts.Rates {
		s, err := p.steady(ctx, rate, opts.Duration)
		if s != nil {
			rep.Steady = append(rep.Steady, *s)
		}
		if err != nil {
			return rep, err
		}
	}

	p.logf("comparing the replica with the master")
	if rep.Check, err = p.compare(ctx); err != nil {
		return rep, err
	}
	rep.Ratios()
	rep.Goals = rep.evaluate()
	if !rep.Check.Converged {
		return rep, ErrDiverged
	}
	return rep, nil
}

// ErrDiverged is returned when the replica does not equal the master after
// the run.
var ErrDiverged = errors.New("bench: the replica does not equal the master")

func (p *pipeline) logf(format string, args ...any) {
	fmt.Fprintf(p.out, "bench: "+format+"\n", args...)
}

func (p *pipeline) setup(mt, rt *target) Setup {
	o := p.opts
	return Setup{
		MasterURL: mt.String(), ReplicaURL: rt.String(),
		Mix: o.Mix, RowBytes: o.RowBytes, Writers: o.Writers, TxRows: o.TxRows, Insert: o.Insert,
		Workers: o.Workers, BatchSize: o.BatchSize, BatchWaitMS: float64(o.BatchWait) / 1e6, Prefetch: o.Prefetch, RelayBatch: o.RelayBatch, Outbox: o.Outbox,
		Seed: o.Seed, CPUs: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0),
		GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH, Started: time.Now().UTC().Truncate(time.Second),
	}
}

func (p *pipeline) createTables(ctx context.Context) error {
	for _, side := range []struct {
		d  *database
		db *sql.DB
	}{{p.mdb, p.masterDB}, {p.rdb, p.rawReplicaDB}} {
		if err := side.d.dialect.Migrate(ctx, sqldialect.FromSQL(side.db)); err != nil {
			return err
		}
		for _, t := range []string{table, "raw_item"} {
			if _, err := side.db.ExecContext(ctx, side.d.tableDDL(t)); err != nil {
				return fmt.Errorf("bench: create table %s: %w", t, err)
			}
		}
	}
	m := p.mdb
	p.insertSQL = fmt.Sprintf("INSERT INTO %s (id, commit_us, probe, payload) VALUES (%s, %s, %s, %s)", table, m.ph(1), m.ph(2), m.ph(3), m.ph(4))
	p.updateSQL = fmt.Sprintf("UPDATE %s SET commit_us = %s, probe = %s, payload = %s WHERE id = %s", table, m.ph(1), m.ph(2), m.ph(3), m.ph(4))
	return nil
}

// sampleBody is an encoded event of the workload's shape, for the raw
// broker figures.
func (p *pipeline) sampleBody() []byte {
	now := time.Now().UTC()
	pl := cqrsync.Payload{
		SignalType: cqrsync.SignalSave, CQRSID: p.cqrsID, InstancePK: int64(123456),
		InstanceData: cqrsync.Object{
			{Key: "id", Value: int64(123456)}, {Key: "cqrs_revision", Value: int64(3)},
			{Key: "cqrs_updated", Value: cqrsync.FormatDateTime(now)}, {Key: "commit_us", Value: now.UnixMicro()},
			{Key: "payload", Value: strings.Repeat("x", p.opts.RowBytes)},
		},
		Meta: cqrsync.Object{}, Expires: now.Add(cqrsync.DefaultMessageTTL),
	}
	body, err := pl.AppendJSON(nil)
	if err != nil {
		panic(err) // a fixed, valid payload
	}
	return body
}

func (p *pipeline) rawLimits(ctx context.Context) (*RawLimits, error) {
	o := p.opts
	raw := &RawLimits{Messages: o.RawMessages}
	var err error
	p.logf("raw: master INSERT+COMMIT, %d writers, %v", o.Writers, o.RawDuration)
	p.masterSt.reset()
	m := startMeter(false)
	if raw.InsertCommit, err = rawInsertCommit(ctx, p.masterDB, p.mdb, "raw_item", o.Writers, o.RawDuration, o.RowBytes); err != nil {
		m.finish()
		return nil, err
	}
	raw.InsertCommitUsage = m.finish()
	raw.InsertCommitStatements = p.masterSt.top(4)
	p.logf("raw: replica multi-row upsert, %d connections × %d rows, %v", o.Workers, o.BatchSize, o.RawDuration)
	if raw.Upsert, err = rawUpsert(ctx, p.rawReplicaDB, p.rdb, "raw_item", o.Workers, o.BatchSize, o.RawDuration, o.RowBytes); err != nil {
		return nil, err
	}
	body := p.sampleBody()
	raw.MessageBytes = len(body)
	q, key := p.queue+"_raw", "raw_"+p.id
	if err := p.br.DeclareRaw(q, key); err != nil {
		return nil, err
	}
	p.logf("raw: broker confirmed publish, %d messages of %d bytes in batches of %d", o.RawMessages, len(body), o.RelayBatch)
	if raw.Publish, err = p.br.RawPublish(ctx, key, body, o.RawMessages, o.RelayBatch); err != nil {
		return nil, err
	}
	p.logf("raw: broker consume, prefetch %d, one ack per %d", o.Prefetch, o.BatchSize)
	if raw.Consume, err = p.br.RawConsume(ctx, q, o.RawMessages, o.Prefetch, o.BatchSize); err != nil {
		return nil, err
	}
	if rp, ok := p.br.(RawPipeliner); ok {
		p.logf("raw: broker consume → replica upsert, %d workers × %d, one ack per message", o.Workers, o.BatchSize)
		up := newRawUpserter(p.rawReplicaDB, p.rdb, "raw_item", o.Workers, o.BatchSize, o.RowBytes)
		if raw.Pipeline, err = rp.RawPipeline(ctx, body, o.RawMessages, o.Workers, o.BatchSize, up.upsert); err != nil {
			return nil, err
		}
	}
	for _, side := range []*sql.DB{p.masterDB, p.rawReplicaDB} {
		if _, err := side.ExecContext(ctx, "DROP TABLE raw_item"); err != nil {
			return nil, err
		}
	}
	return raw, nil
}

// startPipeline wires the master, relay, transports, replica and consumer,
// and starts the relay and the consumer. stop undoes it.
func (p *pipeline) startPipeline(ctx context.Context) (stop func() error, err error) {
	o := p.opts
	var closers []func() error
	stop = func() error {
		var errs []error
		for i := len(closers) - 1; i >= 0; i-- {
			errs = append(errs, closers[i]())
		}
		return errors.Join(errs...)
	}
	if p.pubTr, err = p.br.Transport(ctx, "master"); err != nil {
		return stop, err
	}
	closers = append(closers, p.pubTr.Close)
	if p.subTr, err = p.br.Transport(ctx, "replica"); err != nil {
		return stop, err
	}
	closers = append(closers, p.subTr.Close)
	p.br.Track(p.queue, "dead_letter_"+p.queue)

	if cqrsync.OutboxMode(o.Outbox) == cqrsync.OutboxWAL {
		// A slot and publication of the run's own, dropped at the end (a
		// leftover slot keeps WAL on the server forever).
		closers = append(closers, func() error { return p.dropSlot(p.walSlot()) })
	}
	if o.Hooks || o.HooksRounds > 0 {
		obs, err := p.newObservers()
		if err != nil {
			return stop, err
		}
		p.obs = obs
		closers = append(closers, obs.close)
	}
	var obs *observers
	if o.Hooks {
		obs = p.obs
	}
	if err := p.build(obs); err != nil {
		return stop, err
	}
	for i := range o.Writers {
		p.writers = append(p.writers, newWriter(i, o.Writers, o.RowBytes, o.Seed))
	}

	// The relay runs in the writers' process, as cqrsync recommends: the
	// Master wakes it in-process on every capture, with no NOTIFY trigger
	// (package outbox/pglisten, which serialises concurrent commits).
	closers = append(closers, func() error { return errors.Join(p.stopRelay(), p.stopConsumer()) })
	if err := p.startConsumer(ctx); err != nil {
		return stop, err
	}
	if err := p.startRelay(ctx); err != nil {
		return stop, err
	}
	return stop, nil
}

// walSlot names the --outbox wal run's slot and publication.
func (p *pipeline) walSlot() string { return "cqrsbench_" + p.id }

// dropSlot drops the --outbox wal run's slot and publication (the relay
// has stopped: stop runs the closers in reverse order).
func (p *pipeline) dropSlot(slot string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := sql.Open("pgx", p.mdb.dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	// The walsender of a stopped relay may need a moment to let go.
	var errs []error
	for range 100 {
		err = pgwal.DropSlot(ctx, sqldialect.FromSQL(db), slot)
		if err == nil || errors.Is(err, pgwal.ErrNoSlot) {
			err = nil
			break
		}
		select {
		case <-ctx.Done():
			errs = append(errs, err)
		case <-time.After(50 * time.Millisecond):
			continue
		}
		break
	}
	if err != nil {
		errs = append(errs, err)
	}
	if _, err := db.ExecContext(ctx, "DROP PUBLICATION IF EXISTS "+slot); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// build makes the master, its relay, the replica and its consumer, with
// the hooks of obs (nil: none). Relay and consumer are not started.
func (p *pipeline) build(obs *observers) error {
	o := p.opts
	var hooks hook.Hooks
	var prop hook.Propagator
	if obs != nil {
		hooks, prop = obs.hooks, obs.prop
	}
	masterDrv := databasesql.New(p.masterDB, p.mdb.dialect)
	mcfg := &cqrsync.MasterConfig{Logger: o.Logger, Outbox: cqrsync.OutboxMode(o.Outbox), Hooks: hooks, Propagator: prop}
	var err error
	if mcfg.Outbox == cqrsync.OutboxWAL {
		slot := p.walSlot()
		if p.relay, err = pgwal.NewRelay(&pgwal.Config{
			ConnString: p.mdb.dsn, Slot: slot, Publication: slot,
			Publisher: p.pubTr, BatchSize: o.RelayBatch, Logger: o.Logger, Hooks: hooks,
		}); err != nil {
			return err
		}
	} else {
		r, err := outbox.NewRelay(masterDrv, &outbox.Config{
			Publisher: p.pubTr,
			BatchSize: o.RelayBatch, Logger: o.Logger, Hooks: hooks,
		})
		if err != nil {
			return err
		}
		p.relay, mcfg.Relay = r, r
	}
	if p.master, err = cqrsync.NewMaster(masterDrv, mcfg); err != nil {
		return err
	}
	if err := p.master.Register(&cqrsync.MasterModel{CQRSID: p.cqrsID, Table: table}); err != nil {
		return err
	}
	replica, err := cqrsync.NewReplica(p.replicaDrv, &cqrsync.ReplicaConfig{Logger: o.Logger, Propagator: prop})
	if err != nil {
		return err
	}
	// No OnSave handlers: they would take the model off the batched apply
	// path (the probe connections time the events instead, see probe.go).
	if err := replica.Register(&cqrsync.ReplicaModel{CQRSID: p.cqrsID, Table: table}); err != nil {
		return err
	}
	if p.consumer, err = cqrsync.NewConsumer(&cqrsync.ConsumerConfig{
		Replica: replica, Subscriber: p.subTr, Publisher: p.subTr, Queue: p.queue,
		Workers: o.Workers, BatchSize: o.BatchSize, BatchWait: o.BatchWait, Prefetch: o.Prefetch, Logger: o.Logger, Hooks: hooks,
	}); err != nil {
		return err
	}
	return nil
}

func (p *pipeline) startRelay(ctx context.Context) error {
	if p.relayOn {
		return nil
	}
	if err := p.relay.Start(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	<-p.relay.Started()
	p.relayOn = true
	return nil
}

func (p *pipeline) stopRelay() error {
	if !p.relayOn {
		return nil
	}
	p.relayOn = false
	return p.relay.Stop()
}

func (p *pipeline) startConsumer(ctx context.Context) error {
	if p.consumerOn {
		return nil
	}
	if err := p.consumer.Start(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	select {
	case <-p.consumer.Started():
	case <-ctx.Done():
		return ctx.Err()
	}
	p.consumerOn = true
	return nil
}

func (p *pipeline) stopConsumer() error {
	if !p.consumerOn {
		return nil
	}
	p.consumerOn = false
	return p.consumer.Stop()
}

// settled is how many events the consumer has finished with.
func (p *pipeline) settled() int64 {
	st := p.consumer.Stats()
	return st.Applied + st.Dropped + st.DeadLettered
}

// failed is how many events the consumer could not apply (a benchmark
// expects none).
func (p *pipeline) failed() int64 {
	st := p.consumer.Stats()
	return st.Retried + st.DeadLettered
}

// phase is the bookkeeping of one phase.
type phase struct {
	name     string
	settled0 int64 // consumer's settled count at the start
}

func (p *pipeline) begin(name string, size int) *phase {
	p.rec.reset(p.seq.Load()+1, size)
	p.masterSt.reset()
	p.replicaSt.reset()
	return &phase{name: name, settled0: p.settled()}
}

// diagnostics returns where the phase's time went.
func (p *pipeline) diagnostics() Diagnostics {
	txs, mean := p.rec.applyBatches()
	return Diagnostics{
		ApplyTransactions: txs, SavesPerApplyTx: math.Round(mean*10) / 10,
		MasterStatements: p.masterSt.top(8), ReplicaStatements: p.replicaSt.top(8),
	}
}

// waitDone waits until the replica holds every event committed in the
// phase: the consumer settled as many events as the writers committed,
// and every create and update was seen committed on the replica. It
// returns when that was observed (within a millisecond).
func (p *pipeline) waitDone(ctx context.Context, ph *phase) (time.Time, error) {
	timeout := time.NewTimer(p.opts.Timeout)
	defer timeout.Stop()
	poll := time.NewTicker(time.Millisecond)
	defer poll.Stop()
	report := time.Now().Add(5 * time.Second)
	failed0 := p.failed()
	var allSettled time.Time
	for {
		seen, probes, events := p.rec.progress()
		settled := p.settled() - ph.settled0
		if settled >= events && seen >= probes {
			return time.Now(), nil
		}
		switch {
		case settled < events:
			allSettled = time.Time{}
		case allSettled.IsZero():
			allSettled = time.Now()
		case time.Since(allSettled) > 5*time.Second:
			return time.Time{}, fmt.Errorf("bench: %s: the consumer settled every event but only %d of %d latency probes were seen "+
				"in the replica's statements: has the apply path changed how it passes values? (see internal/bench/probe.go)", ph.name, seen, probes)
		}
		if f := p.failed() - failed0; f > 0 {
			return time.Time{}, fmt.Errorf("bench: %s: the consumer failed to apply %d event(s) (retried or dead-lettered): see the warnings above", ph.name, f)
		}
		if time.Now().After(report) {
			p.logf("%s: %d of %d events settled by the consumer", ph.name, settled, events)
			report = time.Now().Add(5 * time.Second)
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-poll.C:
		case <-timeout.C:
			depth, _ := p.br.Depth(p.queue)
			return time.Time{}, fmt.Errorf("bench: %s: the consumer settled %d of %d events within %v (outbox backlog ≈ %d, queue depth %d, consumer %+v)",
				ph.name, settled, events, p.opts.Timeout, p.committed.Load()-p.relay.Published(), depth, p.consumer.Stats())
		}
	}
}

// peaks samples the backlogs during a phase.
type peaks struct {
	stop               chan struct{}
	wg                 sync.WaitGroup
	outbox, lag, depth atomic.Int64
	p                  *pipeline
	depthErr           atomic.Value
}

// watch samples, every 10 ms, the outbox backlog (events committed and not
// yet published, from the writers' and the relay's counters) and the
// consumer's lag (events published and not yet settled by the consumer);
// and every 100 ms the queue's depth as the broker reports it (ready
// messages).
func (p *pipeline) watch() *peaks {
	pk := &peaks{stop: make(chan struct{}), p: p}
	pk.wg.Add(1)
	go func() {
		defer pk.wg.Done()
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for n := 0; ; n++ {
			pub := p.relay.Published()
			st := p.consumer.Stats()
			setMax(&pk.outbox, p.committed.Load()-pub)
			setMax(&pk.lag, pub-(st.Applied+st.Dropped+st.DeadLettered))
			if n%10 == 0 {
				if d, err := p.br.Depth(p.queue); err == nil {
					setMax(&pk.depth, int64(d))
				}
			}
			select {
			case <-pk.stop:
				return
			case <-t.C:
			}
		}
	}()
	return pk
}

func setMax(a *atomic.Int64, v int64) {
	for {
		cur := a.Load()
		if v <= cur || a.CompareAndSwap(cur, v) {
			return
		}
	}
}

func (pk *peaks) finish() Backlog {
	close(pk.stop)
	pk.wg.Wait()
	return Backlog{OutboxPeak: pk.outbox.Load(), ConsumerLagPeak: pk.lag.Load(), QueueDepthPeak: pk.depth.Load()}
}

// latencies computes the phase's latency figures from the creates and
// updates committed at or after from.
func latencies(samples []sample, from time.Time) Latency {
	f := from.UnixNano()
	var cv, sa, sv []int64
	for _, s := range samples {
		if s.committed < f {
			continue
		}
		cv = append(cv, s.visible-s.committed)
		sa = append(sa, s.applied-s.stamp)
		sv = append(sv, s.visible-s.stamp)
	}
	return Latency{CommitToVisible: percentiles(cv), StampToApply: percentiles(sa), StampToVisible: percentiles(sv)}
}

// rate is n per second over d, to 0.1.
func rate(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return math.Round(float64(n)/d.Seconds()*10) / 10
}

func (p *pipeline) throughput(ctx context.Context, n int) (*Throughput, error) {
	p.logf("throughput: %d changes from %d writers, relay and consumer running", n, p.opts.Writers)
	ph := p.begin("throughput", n)
	m := startMeter(true)
	pk := p.watch()
	ws, err := p.write(ctx, p.opts.TxRows, n, 0, 0)
	if err != nil {
		pk.finish()
		m.finish()
		return nil, err
	}
	done, err := p.waitDone(ctx, ph)
	usage := m.finish()
	backlog := pk.finish()
	if err != nil {
		return nil, err
	}
	samples, last := p.rec.samples()
	end := maxTime(done, time.Unix(0, last))
	c, u, d := p.counts()
	res := &Throughput{
		Changes: ws.changes, Transactions: ws.txs,
		MasterCommitRate: rate(ws.changes, ws.lastCommit.Sub(ws.start)),
		EndToEndRate:     rate(ws.changes, end.Sub(ws.firstCommit)),
		Latency:          latencies(samples, time.Time{}),
		Backlog:          backlog, Usage: usage, Diagnostics: p.diagnostics(),
		TotalCreates: c, TotalUpdates: u, TotalDeletes: d,
	}
	return res, nil
}

func (p *pipeline) drain(ctx context.Context, n int) (*Drain, error) {
	if err := errors.Join(p.stopConsumer(), p.stopRelay()); err != nil {
		return nil, err
	}
	p.logf("drain: writing %d changes, %d per transaction, with the relay and the consumer stopped", n, p.opts.FillTxRows)
	ph := p.begin("drain", n)
	mFill := startMeter(false)
	ws, err := p.write(ctx, p.opts.FillTxRows, n, 0, 0)
	mFill.finish()
	if err != nil {
		return nil, err
	}
	res := &Drain{Events: ws.changes, FillTxRows: p.opts.FillTxRows, FillRate: rate(ws.changes, ws.lastCommit.Sub(ws.start))}

	p.logf("drain: starting the relay (outbox → broker)")
	p.masterSt.reset()
	pub0 := p.relay.Published()
	mRelay := startMeter(false)
	start := time.Now()
	if err := p.startRelay(ctx); err != nil {
		return nil, err
	}
	for p.relay.Published()-pub0 < ws.changes {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Millisecond):
		}
		if time.Since(start) > p.opts.Timeout {
			return nil, fmt.Errorf("bench: drain: the relay published %d of %d events within %v", p.relay.Published()-pub0, ws.changes, p.opts.Timeout)
		}
	}
	res.RelayRate = rate(ws.changes, time.Since(start))
	res.RelayUsage = mRelay.finish()
	res.RelayStatements = p.masterSt.top(8)
	p.masterSt.reset()
	depth, err := p.br.Depth(p.queue)
	if err != nil {
		return nil, err
	}
	res.QueueDepth = int64(depth)

	p.logf("drain: starting the consumer on a queue of %d events", depth)
	m := startMeter(true)
	pk := p.watch()
	start = time.Now()
	if err := p.startConsumer(ctx); err != nil {
		pk.finish()
		m.finish()
		return nil, err
	}
	done, err := p.waitDone(ctx, ph)
	res.Usage = m.finish()
	res.Backlog = pk.finish()
	if err != nil {
		return nil, err
	}
	_, last := p.rec.samples()
	res.DrainRate = rate(ws.changes, maxTime(done, time.Unix(0, last)).Sub(start))
	res.Diagnostics = p.diagnostics()
	return res, nil
}

func (p *pipeline) steady(ctx context.Context, r float64, d time.Duration) (*Steady, error) {
	if err := errors.Join(p.startConsumer(ctx), p.startRelay(ctx)); err != nil {
		return nil, err
	}
	p.logf("steady: %.0f changes/s for %v (the first %v left out of the latency figures)", r, d, p.opts.Warmup)
	ph := p.begin(fmt.Sprintf("steady %.0f/s", r), int(r*d.Seconds()))
	m := startMeter(true)
	pk := p.watch()
	ws, err := p.write(ctx, p.opts.TxRows, 0, r, d)
	if err != nil {
		pk.finish()
		m.finish()
		return nil, err
	}
	_, err = p.waitDone(ctx, ph)
	usage := m.finish()
	backlog := pk.finish()
	if err != nil {
		return nil, err
	}
	samples, _ := p.rec.samples()
	return &Steady{
		TargetRate: r, Changes: ws.changes, Seconds: round3(ws.lastCommit.Sub(ws.start).Seconds()),
		AchievedRate: rate(ws.changes, ws.lastCommit.Sub(ws.start)),
		MaxBehindMS:  ms(int64(ws.behind)), WarmupSeconds: p.opts.Warmup.Seconds(),
		Latency: latencies(samples, ws.start.Add(p.opts.Warmup)),
		Backlog: backlog, Usage: usage, Diagnostics: p.diagnostics(),
	}, nil
}

// compare checks the replica against the master, row by row: key,
// revision, commit_us and payload.
func (p *pipeline) compare(ctx context.Context) (*Check, error) {
	read := func(db *sql.DB) (map[int64]string, error) {
		rows, err := db.QueryContext(ctx, "SELECT id, cqrs_revision, commit_us, payload FROM "+table)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		out := map[int64]string{}
		for rows.Next() {
			var id, rev, stamp int64
			var payload string
			if err := rows.Scan(&id, &rev, &stamp, &payload); err != nil {
				return nil, err
			}
			out[id] = fmt.Sprintf("rev %d, commit_us %d, payload %.12s…", rev, stamp, payload)
		}
		return out, rows.Err()
	}
	mRows, err := read(p.masterDB)
	if err != nil {
		return nil, fmt.Errorf("bench: read the master: %w", err)
	}
	rRows, err := read(p.rawReplicaDB)
	if err != nil {
		return nil, fmt.Errorf("bench: read the replica: %w", err)
	}
	c := &Check{MasterRows: len(mRows), ReplicaRows: len(rRows)}
	note := func(s string) {
		c.Differences++
		if len(c.Examples) < 10 {
			c.Examples = append(c.Examples, s)
		}
	}
	for id, m := range mRows {
		switch r, ok := rRows[id]; {
		case !ok:
			note(fmt.Sprintf("id %d: missing on the replica", id))
		case r != m:
			note(fmt.Sprintf("id %d: master %s; replica %s", id, m, r))
		}
	}
	for id := range rRows {
		if _, ok := mRows[id]; !ok {
			note(fmt.Sprintf("id %d: on the replica, deleted on the master", id))
		}
	}
	c.Converged = c.Differences == 0
	return c, nil
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
