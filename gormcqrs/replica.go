package gormcqrs

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/schema"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/sqldialect"
)

// tagName is the struct tag that names a replica field's master field:
// `cqrs:"name"` reads instance_data's "name" into the field's column, and
// `cqrs:"-"` leaves the field out of replication.
const tagName = "cqrs"

// ReplicaModel returns the cqrsync.ReplicaModel that applies events of
// cqrsID to value's GORM model (a pointer to its struct): its table and
// primary key come from the GORM schema. Without `cqrs` tags, master
// fields keep their names and those the table has no column for are
// ignored; once a field has a `cqrs:"master_field"` tag, the model's
// Mapping lists every field (tagged ones under their master name, the
// others under their column name, `cqrs:"-"` ones not at all), and other
// master fields are dropped. Set OnSave and OnDelete (see [Handle]) or
// other options on the result before registering it.
func ReplicaModel(db *gorm.DB, value any, cqrsID string) (*cqrsync.ReplicaModel, error) {
	s, table, err := parse(db, value)
	if err != nil {
		return nil, err
	}
	pk, err := primaryField(s)
	if err != nil {
		return nil, err
	}
	rm := &cqrsync.ReplicaModel{CQRSID: cqrsID, Table: table, PK: pk.DBName}
	mapping := map[string]string{}
	tagged := false
	for _, f := range replicated(s) {
		name, hasTag := f.Tag.Lookup(tagName)
		tagged = tagged || hasTag
		if !hasTag {
			name = f.DBName
		}
		mapping[name] = f.DBName
	}
	if tagged {
		rm.Mapping = mapping
	}
	return rm, nil
}

// replicated lists the fields of s that events fill: those with a column,
// less cqrs_revision, cqrs_updated and `cqrs:"-"` fields.
func replicated(s *schema.Schema) []*schema.Field {
	var out []*schema.Field
	for _, f := range s.Fields {
		if f.DBName == "" || f.DBName == cqrsync.RevisionField || f.DBName == cqrsync.UpdatedField || f.Tag.Get(tagName) == "-" {
			continue
		}
		out = append(out, f)
	}
	return out
}

// Handle adapts fn into a ReplicaModel.OnSave or OnDelete handler: it
// decodes the event's instance_data into a new T (see [Decode]) and calls
// fn with a *gorm.DB that runs inside the apply transaction, so fn's
// writes commit with the event, or roll back with it. The replica must run
// on a database/sql driver (sqldialect/databasesql, or [Driver]).
func Handle[T any](db *gorm.DB, fn func(tx *gorm.DB, row *T, e *cqrsync.ReplicaEvent) error) func(ctx context.Context, ex sqldialect.Executor, e *cqrsync.ReplicaEvent) error {
	return func(ctx context.Context, ex sqldialect.Executor, e *cqrsync.ReplicaEvent) error {
		q, ok := sqldialect.SQLOf(ex)
		pool, isPool := q.(gorm.ConnPool)
		if !ok || !isPool {
			return fmt.Errorf("gormcqrs: the replica's transaction is not a database/sql one (%T): build the replica on gormcqrs.Driver(db) to use GORM handlers", ex)
		}
		tx := db.Session(&gorm.Session{NewDB: true, Context: ctx})
		tx.Statement.ConnPool = pool
		row := new(T)
		if err := Decode(db, e.Data, row); err != nil {
			return err
		}
		return fn(tx, row, e)
	}
}

// Decode fills dst, a pointer to a GORM model, from data, an event's
// instance_data: each field from the member named by its `cqrs` tag, or
// else its column name (fields without a member keep their value), with
// cqrs_revision and cqrs_updated into the [Revision] fields. Numbers,
// datetimes and nested objects are converted to the field's type.
func Decode(db *gorm.DB, data cqrsync.Object, dst any) error {
	s, _, err := parse(db, dst)
	if err != nil {
		return err
	}
	rv := reflect.ValueOf(dst)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("gormcqrs: Decode into %T: pass a pointer to a struct", dst)
	}
	rv = rv.Elem()
	ctx := context.Background()
	fields := replicated(s)
	for _, col := range []string{cqrsync.RevisionField, cqrsync.UpdatedField} {
		if f := s.LookUpField(col); f != nil {
			fields = append(fields, f)
		}
	}
	for _, f := range fields {
		key := f.DBName
		if name, ok := f.Tag.Lookup(tagName); ok {
			key = name
		}
		v, ok := data.Get(key)
		if !ok {
			continue
		}
		if err := setField(ctx, f, rv, v); err != nil {
			return fmt.Errorf("gormcqrs: decode %s.%s from %q: %w", s.Name, f.Name, key, err)
		}
	}
	return nil
}

var timeType = reflect.TypeFor[time.Time]()

// setField sets a field from a wire value.
func setField(ctx context.Context, f *schema.Field, rv reflect.Value, v any) error {
	ft := f.FieldType
	for ft.Kind() == reflect.Pointer {
		ft = ft.Elem()
	}
	switch x := v.(type) {
	case json.Number:
		switch ft.Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			n, err := x.Int64()
			if err != nil {
				return err
			}
			return f.Set(ctx, rv, n)
		case reflect.Float32, reflect.Float64:
			n, err := x.Float64()
			if err != nil {
				return err
			}
			return f.Set(ctx, rv, n)
		case reflect.String:
			return f.Set(ctx, rv, x.String())
		}
	case string:
		if ft == timeType {
			t, err := cqrsync.ParseDateTime(x)
			if err != nil {
				return err
			}
			return f.Set(ctx, rv, t)
		}
	case cqrsync.Object, []any:
		// Nested data: through JSON, into the field's own type.
		text, err := cqrsync.AppendJSON(nil, x)
		if err != nil {
			return err
		}
		ptr := reflect.New(f.FieldType)
		if err := json.Unmarshal(text, ptr.Interface()); err != nil {
			return err
		}
		return f.Set(ctx, rv, ptr.Elem().Interface())
	}
	return f.Set(ctx, rv, v)
}
