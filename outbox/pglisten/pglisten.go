// Package pglisten wakes an outbox relay when another process commits
// events to a PostgreSQL outbox.
//
// cqrsync's PostgreSQL migration installs a trigger that notifies the
// channel "cqrs_outbox" whenever outbox rows are inserted; NOTIFY is
// delivered at commit, and not at all for a rolled-back transaction. [Run]
// holds one connection that listens on the channel and calls OnNotify for
// each notification, so a relay in any process wakes within milliseconds:
//
//	go pglisten.Run(ctx, &pglisten.Config{ConnString: url, OnNotify: relay.Notify})
//
// The relay still polls as a fallback, so a lost connection delays events
// by at most the poll interval while Run reconnects.
package pglisten

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
)

// Channel is the notification channel cqrsync's PostgreSQL migration uses.
const Channel = "cqrs_outbox"

// Config configures Run.
type Config struct {
	// ConnString is the master database's URL or DSN (pgx syntax). Required.
	ConnString string
	// OnNotify is called for every notification (pass Relay.Notify; it must
	// not block). Required.
	OnNotify func()
	// Channel overrides the channel. Default Channel.
	Channel string
	// MinBackoff and MaxBackoff bound the wait before reconnecting.
	// Defaults 100 ms and 10 s.
	MinBackoff, MaxBackoff time.Duration
	// Logger receives connection failures. Default slog.Default().
	Logger *slog.Logger
	// OnListening, when set, is called each time the listener is (re)connected
	// and listening (tests wait on it).
	OnListening func()
}

// Run listens until ctx ends, reconnecting with backoff when the connection
// fails. It returns nil when ctx ends, or an error for a bad Config.
func Run(ctx context.Context, cfg *Config) error {
	if cfg == nil || cfg.ConnString == "" || cfg.OnNotify == nil {
		return errors.New("pglisten: Config.ConnString and OnNotify are required")
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
