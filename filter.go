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
// table's columns. Build it with ParseFilter; render it with a dialect (see Conds).
type Filter struct {
	conds []sqldialect.Cond
}

// filterOps are the comparisons of the lookups that take one value.
var filterOps = map[string]sqldialect.Op{
	"exact": sqldialect.OpEqual, "gt": sqldialect.OpGreater, "gte": sqldialect.OpGreaterOrEqual,
	"lt": sqldialect.OpLess, "lte": sqldialect.OpLessOrEqual,
	"iexact": sqldialect.OpTextEqual, "startswith": sqldialect.OpStartsWith, "istartswith": sqldialect.OpStartsWith,
	"endswith": sqldialect.OpEndsWith, "iendswith": sqldialect.OpEndsWith, "contains": sqldialect.OpContains, "icontains": sqldialect.OpContains,
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

func parseCond(key string, raw any, columns map[string]ValueType) (sqldialect.Cond, error) {
	field, lookup := key, "exact"
	if i := strings.LastIndex(key, "__"); i > 0 && slices.Contains(filterLookups, key[i+2:]) {
		field, lookup = key[:i], key[i+2:]
	}
	typ, ok := columns[field]
	if !ok {
		if strings.Contains(field, "__") {
			return sqldialect.Cond{}, fmt.Errorf("%w: %q: unknown lookup %q (use one of %s)", ErrBadFilter, key, field[strings.LastIndex(field, "__")+2:], strings.Join(filterLookups, ", "))
		}
		return sqldialect.Cond{}, fmt.Errorf("%w: %q: no column %q in the model (columns: %s)", ErrBadFilter, key, field, strings.Join(sortedKeys(columns), ", "))
	}
	c := sqldialect.Cond{Column: field, Op: filterOps[lookup]}
	bad := func(format string, args ...any) (sqldialect.Cond, error) {
		return sqldialect.Cond{}, fmt.Errorf("%w: %q: %s", ErrBadFilter, key, fmt.Sprintf(format, args...))
	}
	switch lookup {
	case "isnull":
		b, ok := raw.(bool)
		if !ok {
			return bad("isnull takes true or false")
		}
		c.Op = sqldialect.OpIsNotNull
		if b {
			c.Op = sqldialect.OpIsNull
		}
		return c, nil
	case "in":
		list, ok := raw.([]any)
		if !ok {
			return bad("in takes a list")
		}
		c.Op, c.Values = sqldialect.OpIn, []any{}
		for _, item := range list {
			v, err := filterValue(typ, item)
			if err != nil {
				return bad("%v", err)
			}
			c.Values = append(c.Values, v)
		}
		return c, nil
	case "startswith", "istartswith", "endswith", "iendswith", "contains", "icontains", "iexact":
		s, ok := raw.(string)
		if !ok {
			return bad("%s takes a string", lookup)
		}
		c.Values, c.Fold = []any{s}, strings.HasPrefix(lookup, "i")
		return c, nil
	default: // exact, gt, gte, lt, lte
		if raw == nil {
			if lookup == "exact" {
				c.Op = sqldialect.OpIsNull
				return c, nil
			}
			return bad("%s takes a value, not null", lookup)
		}
		v, err := filterValue(typ, raw)
		if err != nil {
			return bad("%v", err)
		}
		c.Values = []any{v}
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

// Conds returns the filter's conditions, for a [sqldialect.Dialect] to
// render (SelectRowsParams.Where, CountRows): column names from the
// allow-list and values converted to the columns' types, so nothing from the
// filter text reaches the SQL but as a bound value. An empty filter has none.
func (f *Filter) Conds() []sqldialect.Cond {
	if f == nil {
		return nil
	}
	return f.conds
}
