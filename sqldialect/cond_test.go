package sqldialect

import (
	"fmt"
	"testing"
)

// TestWhereRendering: conditions render as quoted columns and bound values,
// the way the filter language always rendered them.
func TestWhereRendering(t *testing.T) {
	t.Parallel()
	d := SQLite().(*standard)
	cases := []struct {
		name  string
		conds []Cond
		sql   string
		args  string
	}{
		{"none", nil, ``, `[]`},
		{"equal", []Cond{{Column: "id", Op: OpEqual, Values: []any{3}}}, `"id" = ?1`, `[3]`},
		{"equal and null", []Cond{{Column: "id", Op: OpEqual, Values: []any{3}}, {Column: "name", Op: OpIsNull}}, `"id" = ?1 AND "name" IS NULL`, `[3]`},
		{"in", []Cond{{Column: "id", Op: OpIn, Values: []any{1, 2}}}, `"id" IN (?1, ?2)`, `[1 2]`},
		{"empty in", []Cond{{Column: "id", Op: OpIn}}, `1 = 0`, `[]`},
		{"ranges", []Cond{{Column: "id", Op: OpGreater, Values: []any{1}}, {Column: "id", Op: OpLessOrEqual, Values: []any{9}}, {Column: "created", Op: OpGreaterOrEqual, Values: []any{"2024-01-01"}}},
			`"id" > ?1 AND "id" <= ?2 AND "created" >= ?3`, `[1 9 2024-01-01]`},
		{"not null", []Cond{{Column: "name", Op: OpIsNotNull}}, `"name" IS NOT NULL`, `[]`},
		{"starts with escapes wildcards", []Cond{{Column: "name", Op: OpStartsWith, Values: []any{"a_%!"}}}, `"name" LIKE ?1 ESCAPE '!'`, `[a!_!%!!%]`},
		{"contains folded", []Cond{{Column: "name", Op: OpContains, Values: []any{"Ab"}, Fold: true}}, `LOWER("name") LIKE LOWER(?1) ESCAPE '!'`, `[%Ab%]`},
		{"text equal folded", []Cond{{Column: "name", Op: OpTextEqual, Values: []any{"Ab"}, Fold: true}}, `LOWER("name") LIKE LOWER(?1) ESCAPE '!'`, `[Ab]`},
		{"a quote in a value is bound", []Cond{{Column: "name", Op: OpEqual, Values: []any{"x' OR 1=1 --"}}}, `"name" = ?1`, `[x' OR 1=1 --]`},
		{"a quote in a column is quoted", []Cond{{Column: `a"b`, Op: OpIsNull}}, `"a""b" IS NULL`, `[]`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			sql, args, err := d.where(c.conds, 1)
			if err != nil || sql != c.sql || fmt.Sprint(args) != c.args {
				t.Fatalf("where = %q %v %v, want %q %s", sql, args, err, c.sql, c.args)
			}
		})
	}
}

// TestWhereRefusesMalformedConds: a Cond with the wrong number or kind of
// values is an error naming the column, not SQL that fails later.
func TestWhereRefusesMalformedConds(t *testing.T) {
	t.Parallel()
	d := Postgres().(*standard)
	for _, c := range []Cond{
		{Column: "id", Op: OpEqual},
		{Column: "id", Op: OpIsNull, Values: []any{1}},
		{Column: "id", Op: OpStartsWith, Values: []any{1}},
		{Column: "id", Op: Op(99), Values: []any{1}},
	} {
		if _, _, err := d.where([]Cond{c}, 1); err == nil {
			t.Errorf("where(%+v) accepted it", c)
		}
	}
}
