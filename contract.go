package cqrsync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/cqrsync/cqrsync/sqldialect"
)

// SchemaVersion is the version of the [Schema] document this cqrsync
// writes and reads.
const SchemaVersion = 1

// Schema is what a master publishes, for a replica's contract check
// ([Replica.CheckContract]): per model, the keys of instance_data with
// their wire value types and the master columns they come from. It
// travels as JSON ([Master.Schema], [ReadSchema]; `cqrsync schema` on the
// master, `cqrsync check --schema` on the replica).
type Schema struct {
	// Version is SchemaVersion.
	Version int `json:"version"`
	// Dialect is the master database's dialect ("postgres", "mysql",
	// "sqlite"), which the SQL types are written in.
	Dialect string `json:"dialect"`
	// Models are the master's models, sorted by CQRS ID.
	Models []ModelSchema `json:"models"`
}

// ModelSchema is one master model's events.
type ModelSchema struct {
	// CQRSID is the model's name on the wire.
	CQRSID string `json:"cqrs_id"`
	// PK is the key of instance_data that holds the primary key.
	PK string `json:"pk"`
	// Serializer is true when the model's Serializer builds
	// instance_data: its keys are then not known in advance, and Fields
	// lists only cqrs_revision and cqrs_updated.
	Serializer bool `json:"serializer,omitempty"`
	// Fields are the keys of instance_data, in order.
	Fields []FieldSchema `json:"fields"`
}

// FieldSchema is one key of instance_data.
type FieldSchema struct {
	// Name is the key in instance_data (the column's FieldNames name).
	Name string `json:"name"`
	// Type is the wire value type's name (ParseValueType reads it).
	Type string `json:"type"`
	// SQLType is the master column's declared type, as the master database
	// reports it (e.g. "character varying(200)", "numeric(12,4)").
	SQLType string `json:"sql_type"`
	// Nullable is true when the master column accepts NULL.
	Nullable bool `json:"nullable"`
}

// Schema describes the events of the master's models cqrsIDs (every
// registered model when none is given), read from their tables through ex.
func (m *Master[TTx]) Schema(ctx context.Context, ex sqldialect.Executor, cqrsIDs ...string) (*Schema, error) {
	if len(cqrsIDs) == 0 {
		cqrsIDs = m.Models()
	}
	s := &Schema{Version: SchemaVersion, Dialect: m.drv.Dialect().Name(), Models: []ModelSchema{}}
	for _, id := range slices.Sorted(slices.Values(cqrsIDs)) {
		mm, ti, err := m.modelTable(ctx, ex, id)
		if err != nil {
			return nil, err
		}
		ms := ModelSchema{CQRSID: id, PK: mm.wireName(mm.PK), Serializer: mm.Serializer != nil, Fields: []FieldSchema{}}
		cols := mm.Fields
		if cols == nil {
			for _, c := range ti.columns {
				if c.Name != RevisionField && c.Name != UpdatedField {
					cols = append(cols, c.Name)
				}
			}
		}
		if mm.Serializer != nil {
			cols = nil
		}
		for _, col := range append(slices.Clone(cols), RevisionField, UpdatedField) {
			c := ti.columns[ti.byName[col]]
			// The capture always fills the version columns.
			nullable := c.Nullable && col != RevisionField && col != UpdatedField
			ms.Fields = append(ms.Fields, FieldSchema{Name: mm.wireName(col), Type: ti.types[col].String(), SQLType: c.DeclaredType, Nullable: nullable})
		}
		s.Models = append(s.Models, ms)
	}
	return s, nil
}

// WriteJSON writes the schema as indented JSON.
func (s *Schema) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(s)
}

// ReadSchema reads a schema document that [Schema.WriteJSON] wrote.
func ReadSchema(r io.Reader) (*Schema, error) {
	var s Schema
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("cqrsync: read schema: %w (write one with `cqrsync schema` on the master)", err)
	}
	if s.Version != SchemaVersion {
		return nil, fmt.Errorf("cqrsync: read schema: version %d, this cqrsync reads version %d: write it again with this version's `cqrsync schema`", s.Version, SchemaVersion)
	}
	for _, m := range s.Models {
		for _, f := range m.Fields {
			if _, err := ParseValueType(f.Type); err != nil {
				return nil, fmt.Errorf("cqrsync: read schema: model %s field %s: %w", m.CQRSID, f.Name, err)
			}
		}
	}
	return &s, nil
}

// FindingKind classifies a [ContractFinding].
type FindingKind string

// The kinds of contract findings. Refused, Cut and Dropped lose data or
// fail events; Unread and Unchecked are notes.
const (
	// FindingRefused: the replica database will refuse some or all events
	// (a type it cannot convert, a value out of its range or length, NULL
	// into NOT NULL, a required column the master does not send).
	FindingRefused FindingKind = "refused"
	// FindingCut: values will be stored changed (decimals rounded to fewer
	// places, floats into decimals).
	FindingCut FindingKind = "cut"
	// FindingDropped: the replica means to keep a field but loses it (its
	// Mapping names a field the master does not send, or a column its table
	// lacks), or registers a model the master does not publish.
	FindingDropped FindingKind = "dropped"
	// FindingUnread: the master sends a key (or a whole model) that this
	// replica does not read.
	FindingUnread FindingKind = "unread"
	// FindingUnchecked: a side builds or consumes the data itself (a
	// master's Serializer, a replica's handlers), so the fields could not be
	// compared.
	FindingUnchecked FindingKind = "unchecked"
)

// ContractFinding is one difference between what a master publishes and
// what a replica reads.
type ContractFinding struct {
	// Kind says what will happen.
	Kind FindingKind
	// CQRSID is the model.
	CQRSID string
	// Field is the key of instance_data, "" for the whole model.
	Field string
	// Column is the replica column, "" when there is none.
	Column string
	// Detail says why, with the types, and what to do.
	Detail string
}

// Problem reports whether the finding loses data or fails events
// (refused, cut, dropped), rather than being a note.
func (f ContractFinding) Problem() bool {
	return f.Kind == FindingRefused || f.Kind == FindingCut || f.Kind == FindingDropped
}

// String is the finding as one line.
func (f ContractFinding) String() string {
	where := f.CQRSID
	if f.Field != "" {
		where += "." + f.Field
	}
	if f.Column != "" && f.Column != f.Field {
		where += " → " + f.Column
	}
	return fmt.Sprintf("%s: %s: %s", f.Kind, where, f.Detail)
}

// ContractReport is the result of [Replica.CheckContract].
type ContractReport struct {
	// Findings come model by model (by CQRS ID; first the replica's models
	// the master does not publish), in the order of the master's fields.
	Findings []ContractFinding
}

// Problems returns the findings that lose data or fail events.
func (r *ContractReport) Problems() []ContractFinding {
	return slices.DeleteFunc(slices.Clone(r.Findings), func(f ContractFinding) bool { return !f.Problem() })
}

// ErrContract is wrapped by [ContractReport.Err].
var ErrContract = errors.New("cqrsync: the replica does not match what its master publishes")

// Err returns nil when no finding is a problem, or an error wrapping
// ErrContract that lists the problems.
func (r *ContractReport) Err() error {
	p := r.Problems()
	if len(p) == 0 {
		return nil
	}
	lines := make([]string, len(p))
	for i, f := range p {
		lines[i] = f.String()
	}
	return fmt.Errorf("%w: %s", ErrContract, strings.Join(lines, "; "))
}

// CheckContract compares the replica's models, their Mapping and their
// tables' column types (read through ex) with what the master's schema
// says it publishes, and reports, before the first event fails: fields
// that will be refused or cut by the replica database, fields the replica
// means to keep but will lose, and keys (and models) it does not read. It
// returns an error only when it cannot read a table; the report's Err
// tells whether anything needs fixing.
func (r *Replica) CheckContract(ctx context.Context, ex sqldialect.Executor, s *Schema) (*ContractReport, error) {
	rep := &ContractReport{}
	add := func(kind FindingKind, id, field, col, format string, args ...any) {
		rep.Findings = append(rep.Findings, ContractFinding{Kind: kind, CQRSID: id, Field: field, Column: col, Detail: fmt.Sprintf(format, args...)})
	}
	published := map[string]*ModelSchema{}
	for i := range s.Models {
		published[s.Models[i].CQRSID] = &s.Models[i]
	}
	for _, id := range r.Models() {
		if published[id] == nil {
			add(FindingDropped, id, "", "", "this replica registers the model, but the master does not publish it: it will receive no events (check the CQRS ID on both sides)")
		}
	}
	dialect := r.db.Dialect().Name()
	for _, id := range slices.Sorted(maps.Keys(published)) {
		ms := published[id]
		rm, ok := r.Model(id)
		if !ok {
			add(FindingUnread, id, "", "", "the master publishes the model, and this replica does not register it: its events are dropped")
			continue
		}
		if rm.NoDBOperations {
			add(FindingUnchecked, id, "", "", "NoDBOperations: the handlers read instance_data themselves")
			continue
		}
		ti, err := r.tables.get(ctx, ex, rm.CQRSID, rm.Table, rm.Types)
		if err != nil {
			return nil, err
		}
		if ms.Serializer {
			add(FindingUnchecked, id, "", "", "the master builds instance_data with a Serializer: its keys are not known in advance")
		}
		if rm.OnSave != nil {
			add(FindingUnchecked, id, "", "", "OnSave handlers also read instance_data: only the table's columns are checked")
		}
		checkModelContract(rm, ti, ms, s.Dialect, dialect, add)
	}
	return rep, nil
}

// checkModelContract compares one model's published fields with the
// replica's table.
func checkModelContract(rm *ReplicaModel, ti *tableInfo, ms *ModelSchema, masterDialect, dialect string, add func(kind FindingKind, id, field, col, format string, args ...any)) {
	id := rm.CQRSID
	sent := map[string]bool{}
	written := map[string]bool{} // replica columns the events fill
	for _, f := range ms.Fields {
		sent[f.Name] = true
		col := f.Name
		if rm.Mapping != nil && col != RevisionField && col != UpdatedField {
			mapped, ok := rm.Mapping[col]
			if !ok {
				add(FindingUnread, id, f.Name, "", "not in the replica's Mapping")
				continue
			}
			col = mapped
		}
		if !ti.has(col) {
			if rm.Mapping != nil && col != f.Name {
				add(FindingDropped, id, f.Name, col, "the Mapping writes it to column %s, which table %s does not have: add the column or fix the Mapping", col, rm.Table)
			} else {
				add(FindingUnread, id, f.Name, "", "table %s has no column %s", rm.Table, col)
			}
			continue
		}
		written[col] = true
		c := ti.columns[ti.byName[col]]
		wt, _ := ParseValueType(f.Type)
		for _, d := range fieldProblems(wt, f, ti.types[col], c, masterDialect, dialect) {
			add(d.kind, id, f.Name, col, "%s", d.detail)
		}
	}
	if rm.Mapping != nil {
		for _, field := range slices.Sorted(maps.Keys(rm.Mapping)) {
			if !sent[field] && !ms.Serializer {
				add(FindingDropped, id, field, rm.Mapping[field], "the Mapping reads it, and the master does not send it: column %s never gets a value", rm.Mapping[field])
			}
		}
	}
	if ms.Serializer {
		return
	}
	for _, c := range ti.columns {
		if !written[c.Name] && !c.Nullable && !c.HasDefault {
			add(FindingRefused, id, "", c.Name, "column %s is NOT NULL without a default and no field of the master fills it: every SAVE fails (map a field to it, or give it a default)", c.Name)
		}
	}
	if pk, ok := ti.byName[rm.PK]; ok && !written[ti.columns[pk].Name] {
		add(FindingRefused, id, ms.PK, rm.PK, "the master's key %s does not reach the replica's key column %s: map it", ms.PK, rm.PK)
	}
}

type fieldProblem struct {
	kind   FindingKind
	detail string
}

// sampleWire is a typical wire value of each type, to ask ColumnValue
// whether a replica column of another type takes it.
var sampleWire = map[ValueType]any{
	TypeInt: int64(12), TypeFloat: 1.5, TypeDecimal: 1.25, TypeString: "text", TypeBool: true,
	TypeDate: "2024-01-02", TypeDateTime: "2024-01-02 03:04:05.000006+00:00",
	TypeUUID: "abcdef01-2345-6789-abcd-ef0123456789", TypeJSON: Object{{Key: "k", Value: []any{int64(1)}}},
}

// fieldProblems compares one published field of wire type wt, from a
// master on masterDialect, with the replica column c of value type rt on
// the replica's dialect.
func fieldProblems(wt ValueType, f FieldSchema, rt ValueType, c sqldialect.Column, masterDialect, dialect string) []fieldProblem {
	var out []fieldProblem
	bad := func(kind FindingKind, format string, args ...any) {
		out = append(out, fieldProblem{kind, fmt.Sprintf(format, args...)})
	}
	from := fmt.Sprintf("master %s (%s)", f.SQLType, wt)
	into := fmt.Sprintf("replica %s (%s)", c.DeclaredType, rt)
	if f.Nullable && !c.Nullable {
		bad(FindingRefused, "%s may be null, %s is NOT NULL: a null value fails its event (make the column nullable)", from, into)
	}
	switch sample, ok := sampleWire[wt]; {
	case wt == rt || rt == TypeAuto || !ok:
	case wt == TypeString && rt != TypeJSON:
		bad(FindingRefused, "%s into %s: only text that reads as %s is taken, other values fail their event (change the column's type)", from, into, rt)
		return out
	default:
		if _, err := ColumnValue(rt, sample); err != nil {
			bad(FindingRefused, "%s into %s: the value cannot be converted, every event fails (change the column's type)", from, into)
			return out
		}
	}
	if dialect == "sqlite" {
		return out // SQLite keeps any value whatever the declared type
	}
	ml, rl := sqlLimits(f.SQLType), sqlLimits(c.DeclaredType)
	switch {
	case masterDialect == "sqlite":
		ml = limits{} // SQLite holds any length and 64-bit integers whatever the declared type
	case wt == TypeUUID:
		ml.chars = 36
	}
	switch {
	case (wt == TypeString || wt == TypeJSON || wt == TypeUUID) && rl.chars > 0 && (ml.chars == 0 || ml.chars > rl.chars):
		master := "text of any length"
		if ml.chars > 0 {
			master = fmt.Sprintf("text of up to %d characters", ml.chars)
		}
		how := "refused"
		if dialect == "mysql" {
			how = "refused (cut where sql_mode is not strict)"
		}
		bad(FindingRefused, "%s sends %s, %s holds %d: longer values are %s (widen the column)", from, master, into, rl.chars, how)
	case wt == TypeInt && rl.intBits > 0 && (ml.intBits == 0 || ml.intBits > rl.intBits) && rt == TypeInt:
		bad(FindingRefused, "%s sends integers of %s, %s holds %d bits: larger values are refused (widen the column)", from, bitsText(ml.intBits), into, rl.intBits)
	case (wt == TypeDecimal || wt == TypeInt) && rt == TypeDecimal && rl.precision > 0:
		mi, ri := ml.precision-ml.scale, rl.precision-rl.scale
		if wt == TypeInt {
			mi = 19
		}
		if ml.precision == 0 || mi > ri {
			bad(FindingRefused, "%s into %s: values with more than %d digits before the point are refused (widen the precision)", from, into, ri)
		}
		if wt == TypeDecimal && (ml.precision == 0 || ml.scale > rl.scale) {
			bad(FindingCut, "%s into %s: values are rounded to %d decimal places", from, into, rl.scale)
		}
	case wt == TypeFloat && rt == TypeDecimal:
		bad(FindingCut, "%s into %s: floats are rounded to the column's decimal places", from, into)
	}
	return out
}

func bitsText(bits int) string {
	if bits == 0 {
		return "any size"
	}
	return fmt.Sprintf("%d bits", bits)
}

// limits are what a declared SQL type bounds: characters (0: none), the
// integer width (0: unknown) and a decimal's precision and scale (0: none).
type limits struct {
	chars, intBits, precision, scale int
}

var typeArgs = regexp.MustCompile(`\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)`)

// sqlLimits reads the limits of a declared type of PostgreSQL or MySQL.
func sqlLimits(declared string) limits {
	t := strings.ToLower(strings.TrimSpace(declared))
	var a, b int
	if m := typeArgs.FindStringSubmatch(t); m != nil {
		a, _ = strconv.Atoi(m[1])
		b, _ = strconv.Atoi(m[2])
	}
	base := strings.TrimSpace(typeArgs.ReplaceAllString(t, ""))
	base = strings.TrimSuffix(strings.TrimSuffix(base, " unsigned"), " signed")
	switch base {
	case "varchar", "character varying", "char", "character", "nvarchar", "nchar", "bpchar":
		return limits{chars: a}
	case "tinytext":
		return limits{chars: 255}
	case "text":
		if strings.Contains(t, "(") {
			return limits{chars: a}
		}
		return limits{}
	case "tinyint", "int1":
		return limits{intBits: 8}
	case "smallint", "int2":
		return limits{intBits: 16}
	case "mediumint":
		return limits{intBits: 24}
	case "integer", "int", "int4":
		return limits{intBits: 32}
	case "bigint", "int8":
		return limits{intBits: 64}
	case "numeric", "decimal":
		return limits{precision: a, scale: b}
	}
	return limits{}
}
