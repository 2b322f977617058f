package observe_test

import (
	"context"
	"fmt"
	"time"

	"github.com/cqrsync/cqrsync/hook"
	"github.com/cqrsync/cqrsync/internal/observe"
	"github.com/cqrsync/cqrsync/sqldialect"
)

// Example reads an outbox backlog as a scrape would, and names a batch's
// outcomes as the metrics label them.
func Example() {
	src := observe.Sources{Outbox: func(context.Context) (*sqldialect.OutboxStats, error) {
		return &sqldialect.OutboxStats{Rows: 3, Oldest: time.Now().Add(-time.Minute)}, nil
	}}
	r := src.Read(context.Background())
	fmt.Println(r.HasOutbox, r.Rows, r.OldestAge >= time.Minute)

	for _, o := range observe.Outcomes(&hook.Apply{Size: 4, Applied: 3, Stale: 1}) {
		if o.N > 0 {
			fmt.Println(o.Name, o.N)
		}
	}
	// Output:
	// true 3 true
	// applied 3
	// stale 1
}
