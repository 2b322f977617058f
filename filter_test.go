package cqrsync_test

import (
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
)

var filterColumns = map[string]cqrsync.ValueType{
	"id": cqrsync.TypeInt, "name": cqrsync.TypeString, "created": cqrsync.TypeDate, "active": cqrsync.TypeBool,
}

func TestParseFilter(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, filter, conds string
	}{
		{"empty", ``, `[]`},
		{"empty object", `{}`, `[]`},
		{"exact", `{"id": 3}`, `[{id 0 [3] false}]`},
		{"explicit exact and null", `{"id__exact": 3, "name": null}`, `[{id 0 [3] false} {name 6 [] false}]`},
		{"in", `{"id__in": [1, 2]}`, `[{id 1 [1 2] false}]`},
		{"empty in", `{"id__in": []}`, `[{id 1 [] false}]`},
		{"ranges", `{"id__gt": 1, "id__lte": 9, "created__gte": "2024-01-01"}`, `[{id 2 [1] false} {id 5 [9] false} {created 3 [2024-01-01] false}]`},
		{"isnull false", `{"name__isnull": false}`, `[{name 7 [] false}]`},
		{"startswith keeps wildcards for the dialect to escape", `{"name__startswith": "a_%!"}`, `[{name 9 [a_%!] false}]`},
		{"icontains", `{"name__icontains": "Ab"}`, `[{name 11 [Ab] true}]`},
		{"iexact", `{"name__iexact": "Ab"}`, `[{name 8 [Ab] true}]`},
		{"a quote in a value stays a value", `{"name": "x' OR 1=1 --"}`, `[{name 0 [x' OR 1=1 --] false}]`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f, err := cqrsync.ParseFilter(c.filter, filterColumns)
			if err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprint(f.Conds()); got != c.conds || f.Empty() != (c.conds == "[]") {
				t.Fatalf("Conds = %s (empty %v), want %s", got, f.Empty(), c.conds)
			}
		})
	}
}

func TestParseFilterErrors(t *testing.T) {
	t.Parallel()
	cases := []struct{ name, filter, want string }{
		{"not JSON", `{id: 1}`, "not JSON"},
		{"not an object", `[1]`, "want a JSON object"},
		{"unknown column", `{"secret": 1}`, `no column "secret"`},
		{"unknown lookup", `{"id__regex": "x"}`, `unknown lookup "regex"`},
		{"column name with SQL", `{"id\" OR 1=1 --": 1}`, `no column`},
		{"in needs a list", `{"id__in": 1}`, "in takes a list"},
		{"isnull needs a boolean", `{"id__isnull": 1}`, "true or false"},
		{"wrong type", `{"id": "abc"}`, `"id"`},
		{"object value", `{"id": {"a": 1}}`, "scalar"},
		{"every problem at once", `{"a": 1, "b": 2}`, `no column "b"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := cqrsync.ParseFilter(c.filter, filterColumns)
			if !errors.Is(err, cqrsync.ErrBadFilter) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("ParseFilter(%s) = %v, want ErrBadFilter mentioning %q", c.filter, err, c.want)
			}
		})
	}
}

// FuzzParseFilter: any filter the parser accepts gives conditions the
// dialect renders as SQL the database accepts, on the allow-listed columns
// only.
func FuzzParseFilter(f *testing.F) {
	for _, seed := range []string{`{"id__in":[1,2]}`, `{"name__startswith":"a"}`, `{"created__gte":"2024-01-01","active":true}`,
		`{"name__icontains":"%_!"}`, `{"id":null}`, `{"x":1}`, `[]`, `{"id__in":[1,"2",3.0]}`} {
		f.Add(seed)
	}
	d := sqldialect.SQLite()
	ex := databasesql.New(cqrsynctesting.OpenSQLite(f, `CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, created DATE, active BOOLEAN)`), d).Pool()
	f.Fuzz(func(t *testing.T, text string) {
		filter, err := cqrsync.ParseFilter(text, filterColumns)
		if err != nil {
			if !errors.Is(err, cqrsync.ErrBadFilter) {
				t.Fatalf("error does not wrap ErrBadFilter: %v", err)
			}
			return
		}
		if _, err := d.CountRows(t.Context(), ex, "t", filter.Conds()); err != nil {
			t.Fatalf("accepted filter %q gives SQL the database rejects: %v", text, err)
		}
	})
}

// TestFilterEmptyInMatchesNothing: django-cqrs accepts {"id__in": []} and it
// selects no row; every dialect must run its conditions and count none,
// also combined with another condition.
func TestFilterEmptyInMatchesNothing(t *testing.T) {
	t.Parallel()
	ddl := `CREATE TABLE t (id INTEGER PRIMARY KEY, name VARCHAR(20))`
	dbs := []struct {
		name string
		d    sqldialect.Dialect
		open func(testing.TB, ...string) *sql.DB
	}{
		{"sqlite", sqldialect.SQLite(), cqrsynctesting.OpenSQLite},
		{"postgres", sqldialect.Postgres(), cqrsynctesting.OpenPostgres},
		{"mysql", sqldialect.MySQL(), cqrsynctesting.OpenMySQL},
	}
	for _, c := range dbs {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			db := c.open(t, ddl)
			if _, err := db.Exec(`INSERT INTO t (id, name) VALUES (1, 'a'), (2, 'b')`); err != nil {
				t.Fatal(err)
			}
			for _, text := range []string{`{"id__in": []}`, `{"name": "a", "id__in": []}`} {
				f, err := cqrsync.ParseFilter(text, filterColumns)
				if err != nil {
					t.Fatalf("ParseFilter(%s): %v", text, err)
				}
				n, err := c.d.CountRows(t.Context(), databasesql.New(db, c.d).Pool(), "t", f.Conds())
				if err != nil {
					t.Fatalf("%s: the database rejects its conditions: %v", text, err)
				}
				if n != 0 {
					t.Fatalf("%s selected %d rows, want none", text, n)
				}
			}
		})
	}
}
