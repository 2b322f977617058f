package outbox_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync/outbox"
	"github.com/cqrsync/cqrsync/sqldialect"
)

// stuckRenderer renders the first row image at once and takes 5 s over
// each of the others, unless its context ends first.
type stuckRenderer struct{ calls *int }

func (r stuckRenderer) RenderOutbox(ctx context.Context, row *sqldialect.OutboxRow) (bool, error) {
	if *r.calls++; *r.calls > 1 {
		select {
		case <-time.After(5 * time.Second):
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
	row.Body = []byte("rendered " + string(row.Body[len(sqldialect.RowImagePrefix):]))
	return true, nil
}

// TestRenderStaysWithinTheLease: rendering that would leave too little of
// the claim's lease to publish in stops at the render deadline; the rows not
// rendered by then wait for the next claim, so no second relay can claim
// and publish them while this one still might.
func TestRenderStaysWithinTheLease(t *testing.T) {
	t.Parallel()
	b := setup(t, outbox.Config{
		Lease: 400 * time.Millisecond, PublishTimeout: 200 * time.Millisecond,
		Renderer: stuckRenderer{calls: new(int)},
	})
	rows := make([]sqldialect.OutboxRow, 3)
	for i := range rows {
		rows[i] = sqldialect.OutboxRow{CQRSID: "item", Body: []byte(sqldialect.RowImagePrefix + `"key":"` + string(rune('a'+i)) + `"}`), CreatedAt: time.Now()}
	}
	if err := sqldialect.SQLite().InsertOutbox(t.Context(), b.ex, rows); err != nil {
		t.Fatal(err)
	}
	_, err := b.relay.RunOnce(t.Context())
	if err == nil || !strings.Contains(err.Error(), "lease") {
		t.Fatalf("RunOnce = %v, want an error saying rendering outran the lease", err)
	}
	if got := b.relay.Published(); got != 1 {
		t.Fatalf("published %d rows, want the 1 rendered before the render deadline (lease − publish timeout)", got)
	}
	if n := b.backlog(t); n != 2 {
		t.Fatalf("outbox holds %d rows, want the 2 not rendered", n)
	}
}
