package cli

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/internal/dberr"
	"github.com/cqrsync/cqrsync/internal/errtext"
	"github.com/cqrsync/cqrsync/outbox"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
	"github.com/cqrsync/cqrsync/tools"
	"github.com/cqrsync/cqrsync/transport"
)

// App is what the commands work on: the service's database, its registered
// models, its broker and its replica queue. [Options.Setup] builds it, from
// a configuration file (package config's CLI) or from a service's own Go
// registrations (a binary that mounts this command tree).
type App struct {
	// DB is the service's database. Required by every command that reads or
	// writes tables or the outbox.
	DB *sql.DB
	// Dialect is DB's SQL dialect. Required with DB.
	Dialect sqldialect.Dialect
	// Driver, when set, is the cqrsync driver over DB that the commands'
	// own transactions run on (pgxv5.NewStdlib pipelines them on
	// PostgreSQL); nil means databasesql.New(DB, Dialect).
	Driver sqldialect.Driver[*sql.Tx]
	// Master holds the master models (a *cqrsync.Master[TTx] for any TTx).
	// Required by the master-side commands: bulk-dump, sync, diff-master,
	// diff-sync, deleted-diff-master.
	Master Master
	// Replica holds the replica models. Required by the replica-side
	// commands: consume, bulk-load, diff-replica, deleted-diff-replica,
	// deleted-sync-replica. Consume and bulk-load run on its own driver
	// (the one passed to cqrsync.NewReplica), normally on DB.
	Replica *cqrsync.Replica
	// ResendQueue is the master's resend queue (MasterConfig.ResendQueue):
	// required by resend.
	ResendQueue string
	// Queue is this replica service's queue (django-cqrs's CQRS["queue"]).
	// Required by consume, diff-replica and dead-letters.
	Queue string
	// DeadLetterQueue overrides "dead_letter_<Queue>".
	DeadLetterQueue string
	// OpenTransport connects to the broker. Commands call it only when they
	// need the broker, after validating their options. Required by consume,
	// relay, dead-letters, and by sync and diff-sync unless --no-wait.
	OpenTransport func(ctx context.Context) (*Transport, error)
	// Consumer is the template of consume's consumer: its Workers,
	// BatchSize, Retry, DeadLetterTTL and similar settings are used; the
	// command fills in Replica, transport, Queue, CQRSIDs and Logger, and
	// --workers and --batch override.
	Consumer cqrsync.ConsumerConfig
	// Relay is the template of the relay that relay, sync and diff-sync run:
	// BatchSize, PollInterval and the like are used; the command fills in
	// Publisher and Logger, and runs it on DB.
	Relay outbox.Config
	// WAL, when set, says the master writes its events into PostgreSQL's
	// write-ahead log (cqrsync.MasterConfig.Outbox = OutboxWAL): the relay
	// command then streams WAL.Slot (package outbox/pgwal) instead of
	// claiming cqrs_outbox rows, and outbox status reports the slot.
	WAL *WALOutbox
	// ListenConnString, when set, is a PostgreSQL URL the relay command
	// LISTENs on to wake up as soon as another process commits events
	// (package outbox/pglisten). Empty: the relay polls.
	ListenConnString string
	// Secrets are strings (passwords) scrubbed from every message the
	// commands print, in case a driver quotes them.
	Secrets []string
	// Close, when set, is called when the command ends, to release DB and
	// anything else the setup opened.
	Close func() error
	// SizePool, when set, is called by consume before it starts with the
	// number of database connections it uses at once (one per worker, one
	// for the tombstone purge), so that a setup that owns DB can size its
	// pool; keep as many connections idle as may be open, or every
	// transaction beyond the idle limit opens and closes a connection. Nil:
	// DB's pool is left as it is.
	SizePool func(conns int)
}

// WALOutbox locates a master's write-ahead log outbox (see App.WAL).
type WALOutbox struct {
	// ConnString is the master database's PostgreSQL URL, for the
	// replication connection. Required.
	ConnString string
	// Slot and Publication are the relay's; "" means "cqrsync".
	Slot, Publication string
}

// Master is what the master-side commands use of a *cqrsync.Master[TTx],
// whatever its transaction type: what the tools use, and the checks.
type Master interface {
	tools.Master
	// Models returns the registered CQRS IDs.
	Models() []string
	// Check verifies the outbox and the tables of the given models.
	Check(ctx context.Context, ex sqldialect.Executor, cqrsIDs ...string) error
	// Schema describes what the given models publish (every model when
	// none is given), for a replica's contract check.
	Schema(ctx context.Context, ex sqldialect.Executor, cqrsIDs ...string) (*cqrsync.Schema, error)
	// AnswerResend answers a replica's resend request (cqrsync resend).
	AnswerResend(ctx context.Context, request []byte) error
}

var _ Master = (*cqrsync.Master[*sql.Tx])(nil)

// Transport is a connected broker: RabbitMQ's *rabbitmq.Transport fills all
// three roles; the memory transport's Broker gives them separately.
type Transport struct {
	// Publisher sends events (relay, sync, dead-letter retries).
	Publisher transport.Publisher
	// Subscriber delivers the replica queue (consume).
	Subscriber transport.Subscriber
	// DeadLetters lists, retries and purges dead letters.
	DeadLetters transport.DeadLetters
	// Close, when set, disconnects; it is called when the command ends.
	Close func() error
}

// Needs says what a command needs from the App, so that a setup builds and
// checks only that (a dead-letter tool needs no database).
type Needs struct {
	// DB: App.DB and App.Dialect (pinged before the command runs).
	DB bool
	// Master: App.Master with at least one model.
	Master bool
	// Replica: App.Replica with at least one model.
	Replica bool
	// Transport: App.OpenTransport.
	Transport bool
	// Queue: App.Queue.
	Queue bool
}

// SetupRequest is what [Options.Setup] is told.
type SetupRequest struct {
	// Command is the command being run, e.g. "bulk-dump" or
	// "dead-letters retry", for messages.
	Command string
	// Needs says what the command will use.
	Needs Needs
	// Logger is the commands' logger (stderr, at the level of --log-level):
	// pass it to what the setup creates.
	Logger *slog.Logger
	// Flags are the command's parsed flags, with the root's persistent
	// ones (those of Options.Flags), so that a setup reads its own flags
	// from the tree that runs (Lookup("config")).
	Flags *pflag.FlagSet
}

// session is one command's run: its context, output and App.
type session struct {
	ctx  context.Context
	env  *Env
	st   *state
	app  *App
	log  *slog.Logger
	name string
	tr   *Transport
}

// ex returns the database as an executor.
func (s *session) ex() sqldialect.Executor { return sqldialect.FromSQL(s.app.DB) }

// db returns the database's driver: App.Driver, or App.DB with App.Dialect.
func (s *session) db() sqldialect.DB { return s.app.driver() }

// driver returns App.Driver, or a database/sql driver over DB.
func (a *App) driver() sqldialect.Driver[*sql.Tx] {
	if a.Driver != nil {
		return a.Driver
	}
	return databasesql.New(a.DB, a.Dialect)
}

// dlq returns the dead-letter queue.
func (s *session) dlq() string {
	return cmp.Or(s.app.DeadLetterQueue, transport.DeadLetterQueue(s.app.Queue))
}

// connectTimeout bounds the first contact with the database or the broker.
const connectTimeout = 15 * time.Second

// open builds the App through Options.Setup, checks that it has what the
// command needs, runs check (validation against the registered models,
// before any connection), then pings the database. The returned session is
// closed with close.
func (st *state) open(ctx context.Context, name string, flags *pflag.FlagSet, needs Needs, check func(app *App) error) (*session, error) {
	log := st.logger()
	if st.opts == nil || st.opts.Setup == nil {
		return nil, UsageError{Err: errtext.Errorf("%s: this command tree has no setup: pass cli.Options.Setup (see the cli package docs)", name)}
	}
	app, err := st.opts.Setup(ctx, &SetupRequest{Command: name, Needs: needs, Logger: log, Flags: flags})
	if err != nil {
		return nil, err
	}
	if app == nil {
		return nil, errtext.Errorf("%s: the setup returned no App", name)
	}
	s := &session{ctx: ctx, env: st.env, st: st, app: app, log: log, name: name}
	st.sessions = append(st.sessions, s)
	st.secrets = append(st.secrets, app.Secrets...)
	var missing []string
	if needs.DB && (app.DB == nil || app.Dialect == nil) {
		missing = append(missing, "a database")
	}
	if needs.Master && (app.Master == nil || len(app.Master.Models()) == 0) {
		missing = append(missing, "master models")
	}
	if needs.Replica && (app.Replica == nil || len(app.Replica.Models()) == 0) {
		missing = append(missing, "replica models")
	}
	if needs.Queue && app.Queue == "" {
		missing = append(missing, "the replica queue name")
	}
	if needs.Transport && app.OpenTransport == nil {
		missing = append(missing, "a broker")
	}
	if len(missing) > 0 {
		return s, UsageError{Err: errtext.Errorf("%s needs %s, and the setup has none", name, strings.Join(missing, " and "))}
	}
	if check != nil {
		if err := check(app); err != nil {
			return s, err
		}
	}
	if needs.DB {
		pctx, cancel := context.WithTimeout(ctx, connectTimeout)
		err := app.DB.PingContext(pctx)
		cancel()
		if err != nil {
			if refusedConnection(err) {
				return s, UsageError{Err: errtext.Errorf("the database refused the connection: %w: check the user, password and database name in the database URL", err)}
			}
			return s, errtext.Errorf("database unreachable: %w", err)
		}
	}
	return s, nil
}

// refusedConnection reports whether the database answered and refused the
// connection: bad credentials, no access, no such database. That is a
// configuration error, not an outage: waiting does not help.
func refusedConnection(err error) bool {
	var st interface{ SQLState() string } // PostgreSQL
	if errors.As(err, &st) {
		code := st.SQLState()
		return strings.HasPrefix(code, "28") || code == "3D000" // invalid authorization; no such database
	}
	if n, ok := dberr.MySQLNumber(err); ok {
		switch n {
		case 1044, 1045, 1049, 1698: // database access denied, access denied, unknown database, access denied without password
			return true
		}
	}
	return false
}

// transport connects to the broker (once per session).
func (s *session) transport() (*Transport, error) {
	if s.tr != nil {
		return s.tr, nil
	}
	ctx, cancel := context.WithTimeout(s.ctx, connectTimeout)
	defer cancel()
	tr, err := s.app.OpenTransport(ctx)
	if err != nil {
		return nil, errtext.Errorf("broker unreachable: %w", err)
	}
	s.tr = tr
	return tr, nil
}

// close releases the transport and the App.
func (s *session) close() error {
	var errs []error
	if s.tr != nil && s.tr.Close != nil {
		errs = append(errs, s.tr.Close())
	}
	if s.app != nil && s.app.Close != nil {
		errs = append(errs, s.app.Close())
	}
	return errors.Join(errs...)
}

// checkModel returns a usage error when cqrsID is not among models.
func checkModel(side, cqrsID string, models []string) error {
	if slices.Contains(models, cqrsID) {
		return nil
	}
	return UsageError{Err: errtext.Errorf("--cqrs-id %q is not a %s model here (registered: %s)", cqrsID, side, strings.Join(models, ", "))}
}

// checkFilter checks a --filter's syntax before anything connects: a JSON
// object. Columns and lookups are checked against the table later.
func checkFilter(text string) error {
	if strings.TrimSpace(text) == "" {
		return nil
	}
	v, err := cqrsync.DecodeJSON([]byte(text))
	if err != nil {
		return UsageError{Err: errtext.Errorf("--filter is not JSON: %v; want an object like {\"id__in\": [1, 2]}", err)}
	}
	if _, ok := v.(cqrsync.Object); !ok {
		return UsageError{Err: errors.New(`--filter must be a JSON object like {"id__in": [1, 2]}`)}
	}
	return nil
}

// checkQueue returns a usage error for a queue name that is not a topic
// word.
func checkQueue(flag, q string) error {
	if q != "" && strings.ContainsAny(q, ".*# \t\r\n") {
		return UsageError{Err: errtext.Errorf("%s %q is not a queue name: no '.', '*', '#' or spaces", flag, q)}
	}
	return nil
}

// checkBatch returns a usage error for a batch size below 1.
func checkBatch(n int) error {
	if n < 1 {
		return UsageError{Err: errtext.Errorf("--batch must be at least 1, got %d", n)}
	}
	return nil
}
