// Package config reads cqrsync's configuration file (cqrsync.yaml): the
// service's database and broker, its replica queue, and the master and
// replica models it registers, declared instead of written in Go. The
// cqrsync binary runs on it; a service of its own runs on it too, and adds
// the models that YAML cannot say (handlers, serializers) in Go:
//
//	import (
//		"github.com/cqrsync/cqrsync/cli"
//		"github.com/cqrsync/cqrsync/config"
//		_ "github.com/cqrsync/cqrsync/config/postgres" // the drivers of the URLs it opens
//	)
//
//	os.Exit(cli.Main(config.CLI(&config.CLIOpts{
//		Replicas: []*cqrsync.ReplicaModel{{CQRSID: "invoice", NoDBOperations: true, OnSave: onInvoice, OnDelete: onInvoiceGone}},
//	})))
//
// or, without the command tree, [Load], [Config.OpenDB], [Config.NewMaster]
// and [Config.NewReplica].
//
// # Database URLs
//
// A database URL is opened by its driver package, imported for its side
// effect, so that a program links only the drivers it uses:
//
//	postgres://user:password@host:5432/db?sslmode=disable   config/postgres (pgx)
//	mysql://user:password@host:3306/db                      config/mysql (MariaDB, MySQL)
//	sqlite:///absolute/path/app.db  sqlite:relative/app.db  config/sqlite (modernc.org/sqlite)
//
// A URL whose package is not imported is a configuration problem that
// names the import to add.
//
// # Format
//
// The file is YAML (cqrsync.example.yaml at the repository root shows every
// key with its default). Unknown keys are errors, so a typo never goes
// unnoticed, and every problem is reported at once with the key at fault:
//
//	cqrsync.yaml: 2 problems:
//	  replicas[1].table: required (line 31)
//	  masters[0].fields: must include the primary key "id" (line 12)
//
// Durations are Go durations ("500ms", "30s", "1h30m") or a number of days
// ("7d"); message_ttl also accepts "none" (events never expire).
//
// # Environment
//
// These variables override the file, so that secrets need not be written in
// it:
//
//	CQRSYNC_DATABASE_URL    database.url
//	CQRSYNC_TRANSPORT_URL   transport.url
//	CQRSYNC_QUEUE           queue
//
// (CQRSYNC_CONFIG names the file itself; [CLI] reads it.)
package config

import (
	"cmp"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/internal/dburl"
	"github.com/cqrsync/cqrsync/sqldialect"
)

// Environment variables that override the file.
const (
	EnvConfig       = "CQRSYNC_CONFIG"
	EnvDatabaseURL  = "CQRSYNC_DATABASE_URL"
	EnvTransportURL = "CQRSYNC_TRANSPORT_URL"
	EnvQueue        = "CQRSYNC_QUEUE"
)

// DefaultFile is the configuration file read when none is named.
const DefaultFile = "cqrsync.yaml"

// Config is a parsed and validated configuration.
type Config struct {
	// File is where it was read from; "" when there was no file (only the
	// environment).
	File string
	// Database is the service's database.
	Database Database
	// Transport is the message broker.
	Transport Transport
	// Queue is this replica service's queue (django-cqrs's CQRS["queue"]).
	Queue string
	// DeadLetterQueue overrides "dead_letter_<queue>".
	DeadLetterQueue string
	// Master holds the settings of the master side.
	Master MasterSettings
	// Replica holds the settings of the replica side.
	Replica ReplicaSettings
	// Masters are the master models.
	Masters []MasterModel
	// Replicas are the replica models.
	Replicas []ReplicaModel

	// Where each value came from, for messages about the environment.
	databaseFrom, transportFrom, queueFrom string
}

// Database is the database section.
type Database struct {
	// URL is postgres://, mysql:// or sqlite: (see "Database URLs" in the
	// package documentation).
	URL string
	// MaxOpenConns bounds the connection pool, open and idle alike; 0 means
	// what the command needs, at least 10 (consume: workers + 1).
	MaxOpenConns int
}

// Transport is the transport section.
type Transport struct {
	// URL is amqp:// or amqps:// (RabbitMQ), or the URL of another
	// registered transport kind (see [RegisterTransport]).
	URL string
	// Exchange is the topic exchange; "" means "cqrs", as django-cqrs.
	Exchange string
}

// MasterSettings are the master side's settings.
type MasterSettings struct {
	// MessageTTL is how long events stay valid; 0 means one day,
	// cqrsync.NoExpiry never.
	MessageTTL time.Duration
	// AutoUpdateFields makes partial updates synced changes.
	AutoUpdateFields bool
	// RelayBatch is the relay's batch size; 0 means 500 events.
	RelayBatch int
	// RelayPollInterval is the relay's poll interval; 0 means 200 ms.
	RelayPollInterval time.Duration
	// Outbox is where the master writes its events (YAML outbox: table or
	// wal); "" means cqrsync.OutboxTable. With cqrsync.OutboxWAL (PostgreSQL
	// only) the relay command streams a replication slot (outbox/pgwal).
	Outbox cqrsync.OutboxMode
	// WALSlot and WALPublication name the WAL relay's replication slot and
	// publication (YAML wal_slot, wal_publication); "" means "cqrsync".
	WALSlot, WALPublication string
	// ResendQueue is the queue where `cqrsync resend` answers replicas'
	// resend requests (cqrsync.MasterConfig.ResendQueue); empty: none.
	ResendQueue string
}

// ReplicaSettings are the replica side's settings: the consumer's.
type ReplicaSettings struct {
	// Workers, Batch and Prefetch configure the consumer; 0 means its
	// defaults (1 worker, 100 events per transaction, max(1001, 2 × workers
	// × batch)).
	Workers, Batch, Prefetch int
	// BatchWait is how long a worker waits to fill its batch; 0 (the
	// default) applies at once.
	BatchWait time.Duration
	// TombstoneRetention, DeadLetterTTL and ShutdownTimeout: 0 means the
	// defaults (7 days, 10 days, 30 s).
	TombstoneRetention, DeadLetterTTL, ShutdownTimeout time.Duration
	// WaitPoll is how often a wait for a read-your-writes token (cqrsync
	// wait, Replica.WaitFor) re-reads the key without a consumer in the
	// process; 0 means the default (1 s).
	WaitPoll time.Duration
	// NoResend turns the consumer's resend requests off; ResendInterval is
	// the least time between two requests for one key (0: 1 min). See
	// cqrsync.ConsumerConfig.
	NoResend       bool
	ResendInterval time.Duration
	// Retry is the default retry policy; nil means django-cqrs's (30
	// retries, 2 s apart).
	Retry *Retry
}

// Retry is a retry policy.
type Retry struct {
	// MaxRetries is the number of retries before the dead-letter queue; nil
	// means 30, 0 means none.
	MaxRetries *int
	// Delay is the wait before a retry (0 means 2 s); with MaxDelay, the
	// first wait of an exponential backoff capped at MaxDelay.
	Delay, MaxDelay time.Duration
}

// MasterModel declares a master model; each field is the
// cqrsync.MasterModel field of the same name (YAML keys in snake case).
type MasterModel struct {
	// CQRSID is cqrs_id. Required.
	CQRSID string
	// Table is table. Required.
	Table string
	// PK is pk; "id" when not given.
	PK string
	// Fields is fields; nil sends every column. An item {column: name}
	// lists the column and renames it on the wire.
	Fields []string
	// FieldNames is the renames of fields' {column: name} items (column →
	// name on the wire); nil when there are none.
	FieldNames map[string]string
	// TrackedFields is tracked_fields.
	TrackedFields []string
	// Types is types, parsed.
	Types map[string]cqrsync.ValueType
	// NoProduce is no_produce.
	NoProduce bool
	// MessageTTL overrides MasterSettings.MessageTTL: 0 keeps it.
	MessageTTL time.Duration
}

// ReplicaModel declares a replica model; each field is the
// cqrsync.ReplicaModel field of the same name (YAML keys in snake case).
type ReplicaModel struct {
	// CQRSID is cqrs_id. Required.
	CQRSID string
	// Table is table. Required.
	Table string
	// PK is pk; "id" when not given.
	PK string
	// Mapping is mapping (master field to replica column); when set, it
	// must map a field to PK.
	Mapping map[string]string
	// Types is types, parsed.
	Types map[string]cqrsync.ValueType
	// OnlyDirectSyncs is only_direct_syncs.
	OnlyDirectSyncs bool
	// SelectForUpdate is select_for_update.
	SelectForUpdate bool
	// QueryTimeout is query_timeout; 0 means none.
	QueryTimeout time.Duration
	// Retry is retry; nil keeps ReplicaSettings.Retry.
	Retry *Retry
}

// Problem is one thing wrong with a configuration.
type Problem struct {
	// Path names the key: "replicas[1].table", or an environment variable.
	Path string
	// Line is the line of the file it is on (or its parent's); 0 if unknown.
	Line int
	// Msg says what is wrong and how to fix it.
	Msg string
}

// String renders the problem as "path: message (line N)".
func (p Problem) String() string {
	s := p.Path + ": " + p.Msg
	if p.Line > 0 {
		s += " (line " + strconv.Itoa(p.Line) + ")"
	}
	return s
}

// Error lists every problem of a configuration.
type Error struct {
	// File is the file's name ("" for the environment alone).
	File string
	// Problems are all the problems found, in file order where known.
	Problems []Problem
}

// Error lists the problems: on one line when there is one, else one per
// line under a count.
func (e *Error) Error() string {
	name := cmp.Or(e.File, "configuration")
	if len(e.Problems) == 1 {
		return name + ": " + e.Problems[0].String()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d problems:", name, len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return b.String()
}

// LoadOpts configures Load.
type LoadOpts struct {
	// Optional makes a missing file an empty configuration (the environment
	// may still give URLs) instead of an error: for the default file name.
	Optional bool
	// Getenv reads the environment. Default os.Getenv.
	Getenv func(string) string
}

// Load reads, parses and validates the file at path, with the environment's
// overrides. Problems with the content are reported as one *Error.
func Load(path string, opts *LoadOpts) (*Config, error) {
	if opts == nil {
		opts = &LoadOpts{}
	}
	getenv := opts.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist) && opts.Optional:
		path, data = "", nil
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("config file %s does not exist: create it (see cqrsync.example.yaml) or name another with --config or %s", path, EnvConfig)
	case err != nil:
		return nil, fmt.Errorf("config file: %w", err)
	}
	return Parse(path, data, getenv)
}

// Parse parses and validates a configuration file's content; name is used
// in messages. getenv (nil: no environment) gives the overrides.
func Parse(name string, data []byte, getenv func(string) string) (*Config, error) {
	c, probs := decode(data)
	c.File = name
	c.databaseFrom, c.transportFrom, c.queueFrom = "database.url", "transport.url", "queue"
	if getenv != nil {
		if v := getenv(EnvDatabaseURL); v != "" {
			c.Database.URL, c.databaseFrom = v, EnvDatabaseURL
		}
		if v := getenv(EnvTransportURL); v != "" {
			c.Transport.URL, c.transportFrom = v, EnvTransportURL
		}
		if v := getenv(EnvQueue); v != "" {
			c.Queue, c.queueFrom = v, EnvQueue
		}
	}
	probs = append(probs, c.validate()...)
	if len(probs) > 0 {
		return nil, &Error{File: name, Problems: probs}
	}
	return c, nil
}

// DatabaseSource names where the database URL came from ("database.url" or
// the environment variable), for messages.
func (c *Config) DatabaseSource() string { return c.databaseFrom }

// TransportSource names where the transport URL came from.
func (c *Config) TransportSource() string { return c.transportFrom }

// QueueSource names where the queue came from.
func (c *Config) QueueSource() string { return c.queueFrom }

// validate checks what decoding could not: references between keys, names,
// URLs. Line numbers were recorded while decoding.
func (c *Config) validate() []Problem {
	var probs []Problem
	add := func(path, format string, args ...any) {
		probs = append(probs, Problem{Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	if c.Database.URL != "" {
		if _, err := dburl.Parse(c.Database.URL); err != nil {
			add(c.databaseFrom, "%v", err)
		}
	}
	if c.Transport.URL != "" {
		if err := checkTransportURL(c.Transport.URL); err != nil {
			add(c.transportFrom, "%v", err)
		}
	}
	if c.Queue != "" && !validName(c.Queue) {
		add(c.queueFrom, "%q is not a queue name: no '.', '*', '#' or spaces", c.Queue)
	}
	if c.DeadLetterQueue != "" && !validName(c.DeadLetterQueue) {
		add("dead_letter_queue", "%q is not a queue name: no '.', '*', '#' or spaces", c.DeadLetterQueue)
	}
	return probs
}

func checkTransportURL(raw string) error {
	_, err := transportKind(raw)
	return err
}

// validName reports whether s is usable as a CQRS ID or queue name.
func validName(s string) bool {
	return s != "" && !strings.ContainsAny(s, ".*# \t\r\n")
}

// Passwords returns the passwords in the URLs, so that callers can scrub
// them from any message.
func (c *Config) Passwords() []string {
	var out []string
	if u, err := dburl.Parse(c.Database.URL); err == nil && u.Password != "" {
		out = append(out, u.Password)
	}
	if u, err := url.Parse(c.Transport.URL); err == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			out = append(out, p)
		}
	}
	return out
}

// fileName names the file in messages.
func (c *Config) fileName() string { return cmp.Or(c.File, "the configuration file") }

// NewMaster returns a Master with the file's master settings and models
// and the extra ones registered in Go (models with a Serializer, say),
// on the master database db (databasesql.New(db, dialect)); logger may be
// nil. It reports every
// model's problems at once (nil Master then). Set Relay on the returned
// Master's config by building it yourself from MasterConfig and
// MasterModels when the relay runs in the same process.
func (c *Config) NewMaster(db sqldialect.Driver[*sql.Tx], logger *slog.Logger, extra ...*cqrsync.MasterModel) (*cqrsync.Master[*sql.Tx], error) {
	mc := c.MasterConfig()
	mc.Logger = logger
	master, err := cqrsync.NewMaster(db, &mc)
	if err != nil {
		return nil, err
	}
	if err := registerAll(master.Register, append(c.MasterModels(), extra...)); err != nil {
		return nil, err
	}
	return master, nil
}

// NewReplica returns a Replica with the file's replica settings and models
// and the extra ones registered in Go (custom handlers,
// no-DB-operations models...), on the replica database db (a driver from
// sqldialect/databasesql or sqldialect/pgxv5); logger may be nil. It
// reports every model's problems at once (nil Replica then).
func (c *Config) NewReplica(db sqldialect.DB, logger *slog.Logger, extra ...*cqrsync.ReplicaModel) (*cqrsync.Replica, error) {
	rc := c.ReplicaConfig()
	rc.Logger = logger
	replica, err := cqrsync.NewReplica(db, &rc)
	if err != nil {
		return nil, err
	}
	if err := registerAll(replica.Register, append(c.ReplicaModels(), extra...)); err != nil {
		return nil, err
	}
	return replica, nil
}

// registerAll registers every model and reports every problem at once.
func registerAll[M any](register func(M) error, models []M) error {
	var errs []error
	for _, m := range models {
		errs = append(errs, register(m))
	}
	return errors.Join(errs...)
}

// MasterConfig returns the master-wide settings as a cqrsync.MasterConfig
// (without Dialect, Logger, Relay, Notify, Hooks or Propagator).
func (c *Config) MasterConfig() cqrsync.MasterConfig {
	return cqrsync.MasterConfig{MessageTTL: c.Master.MessageTTL, AutoUpdateFields: c.Master.AutoUpdateFields, Outbox: c.Master.Outbox, ResendQueue: c.Master.ResendQueue}
}

// MasterModels returns the master models, ready to register.
func (c *Config) MasterModels() []*cqrsync.MasterModel {
	out := make([]*cqrsync.MasterModel, len(c.Masters))
	for i, m := range c.Masters {
		out[i] = &cqrsync.MasterModel{
			CQRSID: m.CQRSID, Table: m.Table, PK: m.PK, Fields: slices.Clone(m.Fields), FieldNames: maps.Clone(m.FieldNames),
			TrackedFields: slices.Clone(m.TrackedFields), Types: m.Types, NoProduce: m.NoProduce, MessageTTL: m.MessageTTL,
		}
	}
	return out
}

// ReplicaModels returns the replica models, ready to register.
func (c *Config) ReplicaModels() []*cqrsync.ReplicaModel {
	out := make([]*cqrsync.ReplicaModel, len(c.Replicas))
	for i, m := range c.Replicas {
		rm := &cqrsync.ReplicaModel{
			CQRSID: m.CQRSID, Table: m.Table, PK: m.PK, Mapping: m.Mapping, Types: m.Types,
			OnlyDirectSyncs: m.OnlyDirectSyncs, SelectForUpdate: m.SelectForUpdate, QueryTimeout: m.QueryTimeout,
		}
		if m.Retry != nil {
			p := m.Retry.policy()
			rm.Retry = &p
		}
		out[i] = rm
	}
	return out
}

// ReplicaConfig returns the replica-wide settings as a cqrsync.ReplicaConfig
// (without Dialect or Logger).
func (c *Config) ReplicaConfig() cqrsync.ReplicaConfig {
	return cqrsync.ReplicaConfig{TombstoneRetention: c.Replica.TombstoneRetention, WaitPoll: c.Replica.WaitPoll}
}

// ConsumerConfig returns the consumer settings as a template
// cqrsync.ConsumerConfig (without Replica, DB, transport, Queue or Logger).
func (c *Config) ConsumerConfig() cqrsync.ConsumerConfig {
	cc := cqrsync.ConsumerConfig{
		DeadLetterQueue: c.DeadLetterQueue,
		DeadLetterTTL:   c.Replica.DeadLetterTTL,
		Workers:         c.Replica.Workers,
		BatchSize:       c.Replica.Batch,
		BatchWait:       c.Replica.BatchWait,
		Prefetch:        c.Replica.Prefetch,
		ShutdownTimeout: c.Replica.ShutdownTimeout,
		NoResend:        c.Replica.NoResend,
		ResendInterval:  c.Replica.ResendInterval,
	}
	if c.Replica.Retry != nil {
		cc.Retry = c.Replica.Retry.policy()
	}
	return cc
}

func (r *Retry) policy() cqrsync.RetryPolicy {
	var p cqrsync.RetryPolicy
	if r.MaxRetries != nil {
		p.MaxRetries = *r.MaxRetries
		if p.MaxRetries == 0 {
			p.MaxRetries = -1 // the library reads 0 as "default"; the file means none
		}
	}
	delay := cmp.Or(r.Delay, cqrsync.DefaultRetryDelay)
	if r.MaxDelay > 0 {
		p.Delay = cqrsync.ExponentialDelay(delay, r.MaxDelay)
	} else if r.Delay > 0 {
		p.Delay = func(int) time.Duration { return delay }
	}
	return p
}
