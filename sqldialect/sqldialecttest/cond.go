package sqldialecttest

import (
	"fmt"
	"testing"

	"github.com/cqrsync/cqrsync/sqldialect"
)

// testConds: every comparison of a Cond selects the same rows in
// SelectRows and CountRows, wildcards in text are matched literally, and
// DeleteAllRows empties the table.
func testConds(t *testing.T, h *Harness) {
	b := setup(t, h)
	notes := []any{"apple", "Apricot", "a_c", "banana", nil}
	for i, note := range notes {
		b.exec(t, fmt.Sprintf("INSERT INTO %s (%s, %s, %s) VALUES (%s, %s, %s)", b.d.QuoteIdent("item"),
			b.d.QuoteIdent("id"), b.d.QuoteIdent("name"), b.d.QuoteIdent("note"),
			b.d.Placeholder(1), b.d.Placeholder(2), b.d.Placeholder(3)), int64(i+1), fmt.Sprintf("n%d", i+1), note)
	}
	type C = sqldialect.Cond
	id := func(op sqldialect.Op, vs ...any) C { return C{Column: "id", Op: op, Values: vs} }
	note := func(op sqldialect.Op, fold bool, vs ...any) C {
		return C{Column: "note", Op: op, Values: vs, Fold: fold}
	}
	cases := []struct {
		name  string
		where []C
		want  string
	}{
		{"none", nil, "[1 2 3 4 5]"},
		{"equal", []C{note(sqldialect.OpEqual, false, "apple")}, "[1]"},
		{"in", []C{id(sqldialect.OpIn, int64(2), int64(4), int64(99))}, "[2 4]"},
		{"empty in matches nothing", []C{id(sqldialect.OpIn)}, "[]"},
		{"empty in with another condition", []C{note(sqldialect.OpEqual, false, "apple"), id(sqldialect.OpIn)}, "[]"},
		{"greater", []C{id(sqldialect.OpGreater, int64(3))}, "[4 5]"},
		{"greater or equal", []C{id(sqldialect.OpGreaterOrEqual, int64(3))}, "[3 4 5]"},
		{"less", []C{id(sqldialect.OpLess, int64(2))}, "[1]"},
		{"less or equal", []C{id(sqldialect.OpLessOrEqual, int64(2))}, "[1 2]"},
		{"is null", []C{note(sqldialect.OpIsNull, false)}, "[5]"},
		{"is not null", []C{note(sqldialect.OpIsNotNull, false)}, "[1 2 3 4]"},
		{"text equal folded", []C{note(sqldialect.OpTextEqual, true, "APPLE")}, "[1]"},
		{"starts with folded", []C{note(sqldialect.OpStartsWith, true, "AP")}, "[1 2]"},
		{"ends with", []C{note(sqldialect.OpEndsWith, false, "na")}, "[4]"},
		{"contains a wildcard literally", []C{note(sqldialect.OpContains, false, "_")}, "[3]"},
		{"percent literally", []C{note(sqldialect.OpContains, false, "%")}, "[]"},
		{"escape character literally", []C{note(sqldialect.OpContains, false, "!")}, "[]"},
		{"conditions are joined with AND", []C{note(sqldialect.OpStartsWith, true, "ap"), id(sqldialect.OpGreater, int64(1))}, "[2]"},
	}
	for _, c := range cases {
		rows, err := b.d.SelectRows(b.ctx, b.ex, &sqldialect.SelectRowsParams{Table: "item", PKColumn: "id", Columns: []string{"id"}, Where: c.where})
		if err != nil {
			t.Fatalf("%s: SelectRows: %v", c.name, err)
		}
		ids := scanIDs(t, rows)
		if fmt.Sprint(ids) != c.want {
			t.Errorf("%s: SelectRows = %v, want %s", c.name, ids, c.want)
		}
		n, err := b.d.CountRows(b.ctx, b.ex, "item", c.where)
		if err != nil || n != int64(len(ids)) {
			t.Errorf("%s: CountRows = %d, %v; want %d", c.name, n, err, len(ids))
		}
	}
	if _, err := b.d.CountRows(b.ctx, b.ex, "item", []C{id(sqldialect.OpEqual)}); err == nil {
		t.Error("CountRows accepted OpEqual without a value")
	}
	n, err := b.d.DeleteAllRows(b.ctx, b.ex, "item")
	if err != nil || n != int64(len(notes)) {
		t.Fatalf("DeleteAllRows = %d, %v; want %d", n, err, len(notes))
	}
	if n, err := b.d.CountRows(b.ctx, b.ex, "item", nil); err != nil || n != 0 {
		t.Fatalf("CountRows after DeleteAllRows = %d, %v; want 0", n, err)
	}
}

// scanIDs reads the one int64 column of rows and closes them.
func scanIDs(t *testing.T, rows sqldialect.Rows) []int64 {
	t.Helper()
	defer rows.Close()
	ids := []int64{}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return ids
}
