package pglisten_test

import (
	"context"
	"log/slog"

	"github.com/cqrsync/cqrsync/outbox"
	"github.com/cqrsync/cqrsync/outbox/pglisten"
)

// A relay in a process of its own wakes as soon as a master anywhere
// commits events to the PostgreSQL outbox, instead of waiting for its next
// poll. (Not run: it needs a PostgreSQL server.)
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var relay *outbox.Relay // outbox.NewRelay(pgxv5.New(pool), cfg), started
	go func() {
		err := pglisten.Run(ctx, &pglisten.Config{
			ConnString: "postgres://app@db.internal:5432/billing",
			OnNotify:   relay.Wake,
		})
		if err != nil && ctx.Err() == nil {
			slog.Error("pglisten stopped", "err", err)
		}
	}()
}
