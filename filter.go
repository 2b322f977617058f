package cqrsync

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cqrsync/cqrsync/sqldialect"
)

// ErrBadFilter is wrapped by every error about a filter.
var ErrBadFilter = errors.New("cqrsync: bad filter")

// Filter lookups, as in Django's QuerySet.filter: "field__lookup": value.
// A key without a lookup means exact.
var filterLookups = []string{"exact", "iexact", "in", "gt", "gte", "lt", "lte", "isnull", "startswith", "istartswith", "endswith", "iendswith", "contains", "icontains"}

// Filter is a parsed, validated filter: a conjunction of conditions on a
// table's columns. Build it with ParseFilter; render it with SQL.
type Filter struct {
	conds []filterCond
}

type filterCond struct {
	column string
	lookup string
	typ    ValueType
	values []any // column values (one, or several for "in")
	isNull bool
}

// ParseFilter parses a Django-lookup-like JSON object, such as
//
//	{"id__in": [1, 2], "name__startswith": "a", "created__gte": "2024-01-01", "deleted__isnull": true}
//
// against columns (name → value type): every field must be a column and
// every lookup one of exact, iexact, in, gt, gte, lt, lte, isnull,
// startswith, istartswith, endswith, iendswith, contains, icontains. Values
// are converted to the column's type. Errors name the offending key and wrap
// ErrBadFilter. An empty text or "{}" is a filter that selects everything;
// an empty "in" list, as in Django, selects nothing.
func ParseFilter(text string, columns map[string]ValueType) (*Filter, error) {
	text = strings.TrimSpace(text)
	if text == "" {
		return &Filter{}, nil
	}
	v, err := DecodeJSON([]byte(text))
	if err != nil {
		return nil, fmt.Errorf("%w: not JSON: %v", ErrBadFilter, err)
	}
	obj, ok := v.(Object)
	if !ok {
		return nil, fmt.Errorf("%w: want a JSON object like {\"id__in\": [1, 2]}, got %s", ErrBadFilter, jsonKindName(v))
	}
	f := &Filter{}
	var errs []error
	for _, m := range obj {
		c, err := parseCond(m.Key, m.Value, columns)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		f.conds = append(f.conds, c)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return f, nil
}

func parseCond(key string, raw any, columns map[string]ValueType) (filterCond, error) {
	field, lookup := key, "exact"
	if i := strings.LastIndex(key, "__"); i > 0 && slices.Contains(filterLookups, key[i+2:]) {
		field, lookup = key[:i], key[i+2:]
	}
	typ, ok := columns[field]
	if !ok {
		if strings.Contains(field, "__") {
			return filterCond{}, fmt.Errorf("%w: %q: unknown lookup %q (use one of %s)", ErrBadFilter, key, field[strings.LastIndex(field, "__")+2:], strings.Join(filterLookups, ", "))
		}
		return filterCond{}, fmt.Errorf("%w: %q: no column %q in the model (columns: %s)", ErrBadFilter, key, field, strings.Join(sortedKeys(columns), ", "))
	}
	c := filterCond{column: field, lookup: lookup, typ: typ}
	bad := func(format string, args ...any) (filterCond, error) {
		return filterCond{}, fmt.Errorf("%w: %q: %s", ErrBadFilter, key, fmt.Sprintf(format, args...))
	}
	switch lookup {
	case "isnull":
		b, ok := raw.(bool)
		if !ok {
			return bad("isnull takes true or false")
		}
		c.isNull = b
		return c, nil
	case "in":
		list, ok := raw.([]any)
		if !ok {
			return bad("in takes a list")
		}
		for _, item := range list {
			v, err := filterValue(typ, item)
			if err != nil {
				return bad("%v", err)
			}
			c.values = append(c.values, v)
		}
		return c, nil
	case "startswith", "istartswith", "endswith", "iendswith", "contains", "icontains", "iexact":
		s, ok := raw.(string)
		if !ok {
			return bad("%s takes a string", lookup)
		}
		c.values = []any{s}
		return c, nil
	default: // exact, gt, gte, lt, lte
		if raw == nil {
			if lookup == "exact" {
				c.lookup, c.isNull = "isnull", true
				return c, nil
			}
			return bad("%s takes a value, not null", lookup)
		}
		v, err := filterValue(typ, raw)
		if err != nil {
			return bad("%v", err)
		}
		c.values = []any{v}
		return c, nil
	}
}

func filterValue(typ ValueType, raw any) (any, error) {
	switch raw.(type) {
	case Object, []any:
		return nil, errors.New("takes a scalar value, not an object or a list")
	}
	return ColumnValue(typ, raw)
}

func jsonKindName(v any) string {
	switch v.(type) {
	case []any:
		return "a list"
	case string:
		return "a string"
	case nil:
		return "null"
	case bool:
		return "a boolean"
	}
	return "a number"
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Empty reports whether the filter selects every row.
func (f *Filter) Empty() bool { return f == nil || len(f.conds) == 0 }

// SQL renders the filter as a condition for d, with placeholders numbered
// from first, and returns it with its arguments. Column names are quoted
// identifiers from the allow-list and values are always bound: nothing from
// the filter text is pasted into the SQL. An empty filter renders "".
func (f *Filter) SQL(d sqldialect.Dialect, first int) (string, []any) {
	if f.Empty() {
		return "", nil
	}
	var parts []string
	var args []any
	next := func(v any) string {
		args = append(args, v)
		return d.Placeholder(first + len(args) - 1)
	}
	for _, c := range f.conds {
		col := d.QuoteIdent(c.column)
		switch c.lookup {
		case "isnull":
			if c.isNull {
				parts = append(parts, col+" IS NULL")
			} else {
				parts = append(parts, col+" IS NOT NULL")
			}
		case "in":
			if len(c.values) == 0 {
				// As in Django, an empty list matches nothing; "IN ()" is
				// not SQL.
				parts = append(parts, "1 = 0")
				continue
			}
			marks := make([]string, len(c.values))
			for i, v := range c.values {
				marks[i] = next(v)
			}
			parts = append(parts, col+" IN ("+strings.Join(marks, ", ")+")")
		case "exact":
			parts = append(parts, col+" = "+next(c.values[0]))
		case "gt", "gte", "lt", "lte":
			op := map[string]string{"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[c.lookup]
			parts = append(parts, col+" "+op+" "+next(c.values[0]))
		default: // pattern lookups
			s := c.values[0].(string)
			pattern := likeEscape(s)
			switch strings.TrimPrefix(c.lookup, "i") {
			case "startswith":
				pattern += "%"
			case "endswith":
				pattern = "%" + pattern
			case "contains":
				pattern = "%" + pattern + "%"
			}
			if strings.HasPrefix(c.lookup, "i") {
				parts = append(parts, "LOWER("+col+") LIKE LOWER("+next(pattern)+") ESCAPE '!'")
			} else {
				parts = append(parts, col+" LIKE "+next(pattern)+" ESCAPE '!'")
			}
		}
	}
	return strings.Join(parts, " AND "), args
}

// likeEscape escapes LIKE's wildcards with '!' (not a backslash, which
// MySQL also treats as a string escape).
func likeEscape(s string) string {
	r := strings.NewReplacer("!", "!!", "%", "!%", "_", "!_")
	return r.Replace(s)
}
