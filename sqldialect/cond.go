package sqldialect

import (
	"context"
	"fmt"
	"strings"
)

// Op is the comparison of a [Cond].
type Op int

// The comparisons a [Cond] can make. Values are bound parameters, never
// pasted into the SQL.
const (
	// OpEqual is Column = Values[0].
	OpEqual Op = iota
	// OpIn is Column IN (Values...); with no values it matches no row, as
	// Django's empty "in" does.
	OpIn
	// OpGreater is Column > Values[0].
	OpGreater
	// OpGreaterOrEqual is Column >= Values[0].
	OpGreaterOrEqual
	// OpLess is Column < Values[0].
	OpLess
	// OpLessOrEqual is Column <= Values[0].
	OpLessOrEqual
	// OpIsNull is Column IS NULL; it takes no value.
	OpIsNull
	// OpIsNotNull is Column IS NOT NULL; it takes no value.
	OpIsNotNull
	// OpTextEqual matches the text Values[0] (a string) exactly, through
	// LIKE with the wildcards escaped: with Fold, case-insensitively
	// (Django's iexact).
	OpTextEqual
	// OpStartsWith matches text that starts with Values[0] (a string).
	OpStartsWith
	// OpEndsWith matches text that ends with Values[0] (a string).
	OpEndsWith
	// OpContains matches text that contains Values[0] (a string).
	OpContains
)

// Cond is one condition on a column of the table a statement reads, such
// as a parsed Django-style filter gives. A list of conditions selects the
// rows that match all of them; an empty list selects every row. The dialect
// renders it: the column name is quoted and the values are bound.
type Cond struct {
	// Column is the column's name.
	Column string
	// Op is the comparison.
	Op Op
	// Values are the operands: one, several for OpIn, none for OpIsNull
	// and OpIsNotNull; a string for the text comparisons.
	Values []any
	// Fold makes a text comparison (OpTextEqual, OpStartsWith, OpEndsWith,
	// OpContains) case-insensitive. Other comparisons ignore it.
	Fold bool
}

// compareOps are the SQL operators of the comparisons with one operand.
var compareOps = map[Op]string{OpEqual: "=", OpGreater: ">", OpGreaterOrEqual: ">=", OpLess: "<", OpLessOrEqual: "<="}

// where renders conds joined with AND, with placeholders numbered from
// first, and returns the SQL (without "WHERE"; "" for no condition) and its
// arguments.
func (d *standard) where(conds []Cond, first int) (string, []any, error) {
	var parts []string
	var args []any
	next := func(v any) string {
		args = append(args, v)
		return d.eng.placeholder(first + len(args) - 1)
	}
	for _, c := range conds {
		col := d.QuoteIdent(c.Column)
		want := 1
		switch c.Op {
		case OpIsNull, OpIsNotNull:
			want = 0
		case OpIn:
			want = -1
		}
		if want >= 0 && len(c.Values) != want {
			return "", nil, fmt.Errorf("sqldialect: condition on %s: %d values, want %d", c.Column, len(c.Values), want)
		}
		switch c.Op {
		case OpIsNull:
			parts = append(parts, col+" IS NULL")
		case OpIsNotNull:
			parts = append(parts, col+" IS NOT NULL")
		case OpIn:
			if len(c.Values) == 0 {
				// As in Django, an empty list matches nothing; "IN ()" is
				// not SQL.
				parts = append(parts, "1 = 0")
				continue
			}
			marks := make([]string, len(c.Values))
			for i, v := range c.Values {
				marks[i] = next(v)
			}
			parts = append(parts, col+" IN ("+strings.Join(marks, ", ")+")")
		case OpEqual, OpGreater, OpGreaterOrEqual, OpLess, OpLessOrEqual:
			parts = append(parts, col+" "+compareOps[c.Op]+" "+next(c.Values[0]))
		case OpTextEqual, OpStartsWith, OpEndsWith, OpContains:
			s, ok := c.Values[0].(string)
			if !ok {
				return "", nil, fmt.Errorf("sqldialect: condition on %s: a text comparison takes a string, not %T", c.Column, c.Values[0])
			}
			pattern := likeEscape(s)
			switch c.Op {
			case OpStartsWith:
				pattern += "%"
			case OpEndsWith:
				pattern = "%" + pattern
			case OpContains:
				pattern = "%" + pattern + "%"
			}
			if c.Fold {
				parts = append(parts, "LOWER("+col+") LIKE LOWER("+next(pattern)+") ESCAPE '!'")
			} else {
				parts = append(parts, col+" LIKE "+next(pattern)+" ESCAPE '!'")
			}
		default:
			return "", nil, fmt.Errorf("sqldialect: condition on %s: unknown Op %d", c.Column, c.Op)
		}
	}
	return strings.Join(parts, " AND "), args, nil
}

// likeEscape escapes LIKE's wildcards with '!' (not a backslash, which
// MySQL also treats as a string escape).
func likeEscape(s string) string {
	r := strings.NewReplacer("!", "!!", "%", "!%", "_", "!_")
	return r.Replace(s)
}

func (d *standard) CountRows(ctx context.Context, ex Executor, table string, where []Cond) (int64, error) {
	q := "SELECT COUNT(*) FROM " + d.QuoteIdent(table)
	w, args, err := d.where(where, 1)
	if err != nil {
		return 0, err
	}
	if w != "" {
		q += " WHERE " + w
	}
	rows, err := ex.Query(ctx, q, args...)
	if err != nil {
		return 0, fmt.Errorf("sqldialect: count %s: %w", table, err)
	}
	defer rows.Close()
	var n int64
	if rows.Next() {
		if err := rows.Scan(&n); err != nil {
			return 0, fmt.Errorf("sqldialect: count %s: %w", table, err)
		}
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("sqldialect: count %s: %w", table, err)
	}
	return n, nil
}

func (d *standard) DeleteAllRows(ctx context.Context, ex Executor, table string) (int64, error) {
	n, err := ex.Exec(ctx, "DELETE FROM "+d.QuoteIdent(table))
	if err != nil {
		return 0, fmt.Errorf("sqldialect: delete from %s: %w", table, err)
	}
	return n, nil
}
