// Package pglisten wakes an outbox relay when another process commits
// events to a PostgreSQL outbox.
//
// [Run] installs a trigger that notifies the channel "cqrs_outbox"
// whenever outbox rows are inserted ([Install]; NOTIFY is delivered at
// commit, and not at all for a rolled-back transaction), then holds one
// connection that listens on the channel and calls OnNotify for each
// notification, so a relay in any process wakes within milliseconds:
//
//	go pglisten.Run(ctx, &pglisten.Config{ConnString: url, OnNotify: relay.Wake})
//
// The relay still polls as a fallback, so a lost connection delays events
// by at most the poll interval while Run reconnects.
//
// # Cost
//
// PostgreSQL serialises the commits of notifying transactions (each takes a
// database-wide lock until it has committed), so with the trigger
// concurrent capturing transactions no longer share WAL flushes: measured
// with 8 writers, capture ran at 0.40 of the plain insert rate with the
// trigger and 0.54 without (BENCHMARKS.md). That is why cqrsync's migration
// does not install it: a relay in the writers' own process is woken
// in-process by the Master and needs none. Use pglisten for relays in other
// processes (the cqrsync relay command does), and [Uninstall] when none is
// left.
package pglisten

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Channel is the notification channel cqrsync's PostgreSQL migration uses.
const Channel = "cqrs_outbox"

// Config configures Run.
type Config struct {
	// ConnString is the master database's URL or DSN (pgx syntax). Required.
	ConnString string
	// OnNotify is called for every notification (pass Relay.Wake; it must
	// not block). Required.
	OnNotify func()
	// Channel overrides the channel. Default Channel.
	Channel string
	// MinBackoff and MaxBackoff bound the wait before reconnecting.
	// Defaults 100 ms and 10 s; negatives are refused.
	MinBackoff, MaxBackoff time.Duration
	// Logger receives connection failures. Default slog.Default().
	Logger *slog.Logger
	// OnListening, when set, is called each time the listener is (re)connected
	// and listening (tests wait on it).
	OnListening func()
	// NoInstall skips Install: the trigger is managed by other means (for
	// example, the listening role may not own cqrs_outbox). The installed
	// trigger notifies Channel; a custom Channel needs a trigger of its own.
	NoInstall bool
}

// installSQL creates the trigger unless it exists, under a transaction
// advisory lock so that relays starting together do not race on the DDL.
// Sent as one simple query, it runs as one implicit transaction, which an
// error rolls back, leaving the connection usable. (A trigger left by an
// older cqrsync migration calls the same function without an argument,
// hence the COALESCE.) CREATE TRIGGER waits for every open transaction
// that wrote to cqrs_outbox, and every capture waits behind it: the lock
// timeout gives up after 2 s instead of stalling the writers (Run then
// logs and listens anyway).
const installSQL = `SELECT pg_advisory_xact_lock(hashtext('cqrsync pglisten install'));
SET LOCAL lock_timeout = '2s';
CREATE OR REPLACE FUNCTION cqrs_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(COALESCE(TG_ARGV[0], 'cqrs_outbox'), '');
    RETURN NULL;
END
$$;
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'cqrs_outbox_notify' AND tgrelid = 'cqrs_outbox'::regclass) THEN
        CREATE TRIGGER cqrs_outbox_notify AFTER INSERT ON cqrs_outbox
            FOR EACH STATEMENT EXECUTE FUNCTION cqrs_outbox_notify('cqrs_outbox');
    END IF;
END
$$;`

// Execer runs SQL without arguments; *pgx.Conn, *pgxpool.Pool and *sql.DB
// (through a small adapter) fit.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// Install adds the trigger that notifies Channel when rows are inserted
// into cqrs_outbox, if it is not there yet. Run calls it on every
// (re)connection unless Config.NoInstall is set. cqrs_outbox must exist
// (sqldialect.Postgres().Migrate); the role needs to own it.
func Install(ctx context.Context, conn Execer) error {
	if _, err := conn.Exec(ctx, installSQL); err != nil {
		return fmt.Errorf("pglisten: install the outbox trigger: %w", err)
	}
	return nil
}

// Uninstall removes the trigger, so capturing transactions stop paying for
// notifications no relay waits for.
func Uninstall(ctx context.Context, conn Execer) error {
	if _, err := conn.Exec(ctx, "DROP TRIGGER IF EXISTS cqrs_outbox_notify ON cqrs_outbox"); err != nil {
		return fmt.Errorf("pglisten: remove the outbox trigger: %w", err)
	}
	return nil
}

// Run listens until ctx ends, reconnecting with backoff when the connection
// fails. It returns nil when ctx ends, or an error for a bad Config.
func Run(ctx context.Context, cfg *Config) error {
	if cfg == nil || cfg.ConnString == "" || cfg.OnNotify == nil {
		return errors.New("pglisten: Config.ConnString and OnNotify are required")
	}
	if cfg.MinBackoff < 0 || cfg.MaxBackoff < 0 || (cfg.MaxBackoff > 0 && cfg.MaxBackoff < cfg.MinBackoff) {
		return fmt.Errorf("pglisten: Config.MinBackoff (%v) and MaxBackoff (%v): use 0 <= MinBackoff <= MaxBackoff, or 0 for the defaults 100ms and 10s", cfg.MinBackoff, cfg.MaxBackoff)
	}
	connCfg, err := pgx.ParseConfig(cfg.ConnString)
	if err != nil {
		return err
	}
	channel := cmp.Or(cfg.Channel, Channel)
	minB, maxB := cmp.Or(cfg.MinBackoff, 100*time.Millisecond), cmp.Or(cfg.MaxBackoff, 10*time.Second)
	logger := cmp.Or(cfg.Logger, slog.Default())
	backoff := time.Duration(0)
	for ctx.Err() == nil {
		err := listen(ctx, connCfg, channel, cfg)
		if ctx.Err() != nil {
			return nil
		}
		backoff = min(max(2*backoff, minB), maxB)
		logger.WarnContext(ctx, "pglisten: connection lost, reconnecting", slog.Any("error", err), slog.Duration("retry_in", backoff))
		// Events committed meanwhile are found by the relay's next look.
		cfg.OnNotify()
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
	return nil
}

func listen(ctx context.Context, connCfg *pgx.ConnConfig, channel string, cfg *Config) error {
	conn, err := pgx.ConnectConfig(ctx, connCfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if !cfg.NoInstall {
		if err := Install(ctx, conn); err != nil {
			if ctx.Err() != nil {
				return err
			}
			// Listen anyway: the trigger may be there already (installed by
			// a role that owns cqrs_outbox); without it the relay polls.
			cmp.Or(cfg.Logger, slog.Default()).WarnContext(ctx, "pglisten: cannot install the outbox trigger; listening anyway (set NoInstall if it is managed elsewhere)", slog.Any("error", err))
		}
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		return err
	}
	if cfg.OnListening != nil {
		cfg.OnListening()
	}
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return err
		}
		cfg.OnNotify()
	}
}
