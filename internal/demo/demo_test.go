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
// back: the comparison must report it and the run must fail.
func TestDemoDetectsDivergence(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, sql, want string
	}{
		{"changed field", "UPDATE customer_copy SET full_name = 'tampered' WHERE id = (SELECT MIN(id) FROM customer_copy)", "master ["},
		{"missing row", "DELETE FROM customer_copy WHERE id = (SELECT MIN(id) FROM customer_copy)", "missing on the replica"},
		{"extra row", "INSERT INTO customer_copy VALUES (999999, 'ghost', 1, 1, NULL, NULL, 0, '2024-01-01 00:00:00+00:00')", "on the replica but deleted on the master"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			res, err := demo.Run(t.Context(), demo.Options{Changes: 200, Writers: 2, Workers: 2, Dir: t.TempDir(), Logger: quiet(),
				AfterSync: func(ctx context.Context, db *sql.DB) error {
					_, err := db.ExecContext(ctx, c.sql)
					return err
				}}, &out)
			if !errors.Is(err, demo.ErrDiverged) || res.Converged() {
				t.Fatalf("demo after corruption: %v, want ErrDiverged\n%s", err, out.String())
			}
			if !strings.Contains(out.String(), "DIVERGED: 1 difference") || !strings.Contains(out.String(), c.want) {
				t.Fatalf("report does not name the difference (%q):\n%s", c.want, out.String())
			}
		})
	}
}
