package sqldialecttest

import (
	"fmt"
	"slices"
	"testing"
)

// testAddVersionColumns: the DDL a schema check suggests for a table that
// lacks the version columns runs, and gives the table both columns.
func testAddVersionColumns(t *testing.T, h *Harness) {
	b := setup(t, h)
	b.exec(t, fmt.Sprintf("CREATE TABLE %s (%s BIGINT NOT NULL PRIMARY KEY)", b.d.QuoteIdent("bare"), b.d.QuoteIdent("id")))
	for _, col := range []string{"cqrs_revision", "cqrs_updated"} {
		b.exec(t, b.d.AddVersionColumnSQL("bare", col))
	}
	cols, err := b.d.TableColumns(b.ctx, b.ex, "bare")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range cols {
		names = append(names, c.Name)
	}
	if !slices.Equal(names, []string{"id", "cqrs_revision", "cqrs_updated"}) {
		t.Fatalf("columns after AddVersionColumnSQL = %v, want [id cqrs_revision cqrs_updated]", names)
	}
}
