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
)

var filterColumns = map[string]cqrsync.ValueType{
	"id": cqrsync.TypeInt, "name": cqrsync.TypeString, "created": cqrsync.TypeDate, "active": cqrsync.TypeBool,
}

func TestParseFilter(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, filter, sql string
		args              string
	}{
		{"empty", ``, ``, `[]`},
		{"empty object", `{}`, ``, `[]`},
		{"exact", `{"id": 3}`, `"id" = ?1`, `[3]`},
		{"explicit exact and null", `{"id__exact": 3, "name": null}`, `"id" = ?1 AND "name" IS NULL`, `[3]`},
		{"in", `{"id__in": [1, 2]}`, `"id" IN (?1, ?2)`, `[1 2]`},
		{"ranges", `{"id__gt": 1, "id__lte": 9, "created__gte": "2024-01-01"}`, `"id" > ?1 AND "id" <= ?2 AND "created" >= ?3`, `[1 9 2024-01-01]`},
		{"isnull false", `{"name__isnull": false}`, `"name" IS NOT NULL`, `[]`},
		{"startswith escapes wildcards", `{"name__startswith": "a_%!"}`, `"name" LIKE ?1 ESCAPE '!'`, `[a!_!%!!%]`},
		{"icontains", `{"name__icontains": "Ab"}`, `LOWER("name") LIKE LOWER(?1) ESCAPE '!'`, `[%Ab%]`},
		{"a quote in a value is bound, not pasted", `{"name": "x' OR 1=1 --"}`, `"name" = ?1`, `[x' OR 1=1 --]`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f, err := cqrsync.ParseFilter(c.filter, filterColumns)
			if err != nil {
				t.Fatal(err)
			}
			sql, args := f.SQL(sqldialect.SQLite(), 1)
			if sql != c.sql || fmt.Sprint(args) != c.args {
				t.Fatalf("SQL = %q %v, want %q %s", sql, args, c.sql, c.args)
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

// FuzzParseFilter: any filter the parser accepts renders SQL the database
// accepts, on the allow-listed columns only.
func FuzzParseFilter(f *testing.F) {
	for _, seed := range []string{`{"id__in":[1,2]}`, `{"name__startswith":"a"}`, `{"created__gte":"2024-01-01","active":true}`,
		`{"name__icontains":"%_!"}`, `{"id":null}`, `{"x":1}`, `[]`, `{"id__in":[1,"2",3.0]}`} {
		f.Add(seed)
	}
	db := cqrsynctesting.OpenSQLite(f, `CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, created DATE, active BOOLEAN)`)
	f.Fuzz(func(t *testing.T, text string) {
		filter, err := cqrsync.ParseFilter(text, filterColumns)
		if err != nil {
			if !errors.Is(err, cqrsync.ErrBadFilter) {
				t.Fatalf("error does not wrap ErrBadFilter: %v", err)
			}
			return
		}
		where, args := filter.SQL(sqldialect.SQLite(), 1)
		q := "SELECT COUNT(*) FROM t"
		if where != "" {
			q += " WHERE " + where
		}
		var n int
		if err := db.QueryRow(q, args...).Scan(&n); err != nil {
			t.Fatalf("accepted filter %q gives SQL the database rejects: %s: %v", text, q, err)
		}
	})
}

// TestFilterEmptyInMatchesNothing: django-cqrs accepts {"id__in": []} and it
// selects no row; every dialect must run the rendered SQL and count none,
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
				where, args := f.SQL(c.d, 1)
				var n int
				if err := db.QueryRow("SELECT COUNT(*) FROM t WHERE "+where, args...).Scan(&n); err != nil {
					t.Fatalf("%s renders %q, which the database rejects: %v", text, where, err)
				}
				if n != 0 {
					t.Fatalf("%s selected %d rows, want none", text, n)
				}
			}
		})
	}
}
