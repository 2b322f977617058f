package demo_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/cqrsync/cqrsync/internal/demo"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestDemoConverges(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	res, err := demo.Run(t.Context(), demo.Options{Changes: 600, Writers: 3, Workers: 3, Dir: t.TempDir(), Logger: quiet()}, &out)
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	if !res.Converged() || res.Rows == 0 || res.Creates+res.Updates+res.Deletes < 500 {
		t.Fatalf("result = %+v", res)
	}
	if !strings.Contains(out.String(), "converged: the replica equals the master") {
		t.Fatalf("report lacks the convergence line:\n%s", out.String())
	}
}

// TestDemoDetectsDivergence corrupts one replica row behind the consumer's
// back: the comparison must report it and the run must fail, on the
// in-memory broker and on a real one (which the run still cleans up).
func TestDemoDetectsDivergence(t *testing.T) {
	t.Parallel()
	missing := "DELETE FROM customer_copy WHERE id = (SELECT MIN(id) FROM customer_copy)"
	cases := []struct {
		name, sql, want string
		broker          *server // nil: the in-memory broker
	}{
		{name: "changed field", sql: "UPDATE customer_copy SET full_name = 'tampered' WHERE id = (SELECT MIN(id) FROM customer_copy)", want: "master ["},
		{name: "missing row", sql: missing, want: "missing on the replica"},
		{name: "extra row", sql: "INSERT INTO customer_copy VALUES (999999, 'ghost', 1, 1, NULL, NULL, 0, '2024-01-01 00:00:00+00:00')", want: "on the replica but deleted on the master"},
		{name: "missing row on NATS", sql: missing, want: "missing on the replica", broker: new(natsServer())},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			opts := demo.Options{Changes: 200, Writers: 2, Workers: 2, Dir: t.TempDir(), Logger: quiet(),
				AfterSync: func(ctx context.Context, db *sql.DB) error {
					_, err := db.ExecContext(ctx, c.sql)
					return err
				}}
			if c.broker != nil {
				opts.Transport, opts.Name = c.broker.url(t), uniqueName(t)
			}
			var out bytes.Buffer
			res, err := demo.Run(t.Context(), opts, &out)
			if !errors.Is(err, demo.ErrDiverged) || res.Converged() {
				t.Fatalf("demo after corruption: %v, want ErrDiverged\n%s", err, out.String())
			}
			if !strings.Contains(out.String(), "DIVERGED: 1 difference") || !strings.Contains(out.String(), c.want) {
				t.Fatalf("report does not name the difference (%q):\n%s", c.want, out.String())
			}
			if c.broker != nil {
				c.broker.assertCleanedUp(t, opts.Transport, opts.Name)
			}
		})
	}
}
