// Package wirevalue converts column values between a database and the
// django-cqrs wire format ([WireValue], [ColumnValue]) by [ValueType], and
// formats and parses django-cqrs datetimes. The root package re-exports its
// public names (cqrsync.ValueType, cqrsync.WireValue, ...).
package wirevalue

import (
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/cqrsync/cqrsync/internal/errtext"
	"github.com/cqrsync/cqrsync/internal/ujson"
)

// ValueType says how a column's values are written on the wire and bound to
// the database (README §5.2 of the django-cqrs contract).
type ValueType int

// Column value types.
const (
	// TypeAuto passes values through, converting by Go type on a best-effort
	// basis (time.Time to a datetime string, []byte to string).
	TypeAuto ValueType = iota
	// TypeInt is an integer column: a JSON integer on the wire.
	TypeInt
	// TypeFloat is a floating-point column: a JSON number.
	TypeFloat
	// TypeDecimal is a fixed-point column: a JSON number on the wire (through
	// a 64-bit float, as django-cqrs does), decimal text for the database.
	TypeDecimal
	// TypeString is a text column.
	TypeString
	// TypeBool is a boolean column.
	TypeBool
	// TypeDate is a date column: "YYYY-MM-DD".
	TypeDate
	// TypeDateTime is a timestamp column: "YYYY-MM-DD HH:MM:SS[.ffffff]+00:00".
	TypeDateTime
	// TypeUUID is a UUID column: lowercase, hyphenated, 36 characters.
	TypeUUID
	// TypeJSON is a JSON column: an embedded JSON value on the wire, JSON
	// text for the database.
	TypeJSON
)

var valueTypeNames = [...]string{
	TypeAuto:     "auto",
	TypeInt:      "int",
	TypeFloat:    "float",
	TypeDecimal:  "decimal",
	TypeString:   "string",
	TypeBool:     "bool",
	TypeDate:     "date",
	TypeDateTime: "datetime",
	TypeUUID:     "uuid",
	TypeJSON:     "json",
}

// String returns the name ParseValueType accepts ("int", "datetime", ...).
func (t ValueType) String() string {
	if t >= 0 && int(t) < len(valueTypeNames) {
		return valueTypeNames[t]
	}
	return "ValueType(" + strconv.Itoa(int(t)) + ")"
}

// ParseValueType parses a value type name: "auto", "int", "float",
// "decimal", "string", "bool", "date", "datetime", "uuid" or "json"
// (case-insensitive, surrounding spaces ignored).
func ParseValueType(s string) (ValueType, error) {
	name := strings.ToLower(strings.TrimSpace(s))
	for t, n := range valueTypeNames {
		if n == name {
			return ValueType(t), nil
		}
	}
	return TypeAuto, fmt.Errorf("cqrsync: parsing value type: unknown type %q", s)
}

// ValueTypeOfSQL maps a declared SQL column type of any common dialect
// (PostgreSQL, MySQL, SQLite, ...) to a ValueType, case-insensitively.
// Length, precision and modifiers are ignored ("NUMERIC(14,4)" is
// TypeDecimal, "VARCHAR(200)" and "CHAR(36)" are TypeString), except that
// MySQL's TINYINT(1) and BIT(1) are TypeBool. Types it does not know
// (time, interval, arrays, binary, ...) give TypeAuto.
func ValueTypeOfSQL(declared string) ValueType {
	s := strings.ToLower(strings.TrimSpace(declared))
	if strings.HasSuffix(s, "]") {
		return TypeAuto // PostgreSQL array
	}
	// Remove parenthesised parameters, remembering the first one.
	param := ""
	var b strings.Builder
	for {
		open := strings.IndexByte(s, '(')
		if open < 0 {
			b.WriteString(s)
			break
		}
		b.WriteString(s[:open])
		closing := strings.IndexByte(s[open:], ')')
		if closing < 0 {
			break
		}
		if param == "" {
			param = strings.TrimSpace(s[open+1 : open+closing])
		}
		s = s[open+closing+1:]
	}
	words := strings.Fields(b.String())
	if len(words) == 0 {
		return TypeAuto
	}
	name := words[0]
	switch name {
	case "tinyint", "bit":
		if param == "1" {
			return TypeBool
		}
		if name == "bit" {
			return TypeAuto
		}
		return TypeInt
	case "int", "integer", "int2", "int4", "int8", "smallint", "mediumint", "bigint",
		"serial", "serial2", "serial4", "serial8", "smallserial", "bigserial":
		return TypeInt
	case "bool", "boolean":
		return TypeBool
	case "real", "float", "float4", "float8", "double", "binary_float", "binary_double":
		return TypeFloat
	case "numeric", "decimal", "dec", "number", "fixed":
		return TypeDecimal
	case "char", "character", "varchar", "nchar", "nvarchar", "varchar2", "nvarchar2",
		"text", "tinytext", "mediumtext", "longtext", "ntext", "clob", "nclob",
		"string", "citext", "enum", "set", "varying", "native", "national":
		return TypeString
	case "date":
		return TypeDate
	case "timestamp", "timestamptz", "datetime", "datetime2", "datetimeoffset", "smalldatetime":
		return TypeDateTime
	case "uuid", "uniqueidentifier":
		return TypeUUID
	case "json", "jsonb":
		return TypeJSON
	}
	return TypeAuto
}

// ErrInvalidValue is matched (with errors.Is) by every error of
// [WireValue] and [ColumnValue]: the value cannot be converted to the
// column's type.
var ErrInvalidValue = errors.New("cqrsync: invalid value")

type valueError struct {
	dir    string // "the wire" or "a column"
	t      ValueType
	v      any
	reason string
	err    error
}

func (e *valueError) Error() string {
	msg := "cqrsync: converting " + valDescribe(e.v) + " to " + e.t.String() + " for " + e.dir + ": " + e.reason
	if e.err != nil {
		msg += ": " + errtext.Cause(e.err)
	}
	return msg
}

func (e *valueError) Is(target error) bool { return target == ErrInvalidValue }

func (e *valueError) Unwrap() error { return e.err }

// valDescribe names the Go type and shows the value, truncated.
func valDescribe(v any) string {
	switch v := v.(type) {
	case string:
		return "string " + ujson.QuoteTrunc(v)
	case []byte:
		return "[]byte " + ujson.QuoteTrunc(string(v))
	case json.Number:
		return "number " + ujson.QuoteTrunc(string(v))
	case time.Time:
		return "time.Time " + v.Format(time.RFC3339Nano)
	case ujson.Object, []any, map[string]any:
		b, err := ujson.Append(nil, v)
		if err != nil {
			return fmt.Sprintf("%T", v)
		}
		return fmt.Sprintf("%T %s", v, ujson.QuoteTrunc(string(b)))
	default:
		s := fmt.Sprintf("%v", v)
		if len(s) > 64 {
			s = ujson.QuoteTrunc(s)
		}
		return fmt.Sprintf("%T %s", v, s)
	}
}

// WireValue converts a value read from a database (what a database/sql
// driver scans into an any: nil, int64, float64, bool, []byte, string,
// time.Time; also json.Number, the other Go integer and float types,
// [16]byte UUIDs and driver.Valuer implementations) into the canonical
// django-cqrs wire value for a column of type t, ready for [ujson.Append]:
//
//   - TypeInt: int64 (numeric strings and []byte are accepted);
//   - TypeFloat: float64;
//   - TypeDecimal: float64, as django-cqrs converts decimals through a
//     64-bit float ("1234.5600" becomes 1234.56 and "10" becomes 10.0);
//   - TypeString: string;
//   - TypeBool: bool (also from 0/1 and "t"/"f"/"true"/"false"/"1"/"0");
//   - TypeDate: "YYYY-MM-DD" (a time.Time gives its calendar date in its
//     own location);
//   - TypeDateTime: [FormatDateTime] of the time in UTC, from a time.Time or
//     text [ParseDateTime] accepts (as SQLite stores it);
//   - TypeUUID: lowercase hyphenated text, from text in either case with or
//     without hyphens, or 16 raw bytes;
//   - TypeJSON: the ordered value ([ujson.Decode]) of JSON text; decoded
//     values (ujson.Object, []any, ...) pass through;
//   - TypeAuto: time.Time as [FormatDateTime] in UTC, []byte as string,
//     [16]byte as a UUID, other encodable values unchanged.
//
// nil is always nil (JSON null). NaN and infinite floats are errors, since
// JSON cannot carry them. Errors match [ErrInvalidValue] and name the Go
// type and the value.
func WireValue(t ValueType, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	if val, ok := v.(driver.Valuer); ok {
		dv, err := val.Value()
		if err != nil {
			return nil, &valueError{dir: "the wire", t: t, v: v, reason: "driver.Valuer failed", err: err}
		}
		if dv == nil {
			return nil, nil
		}
		if _, again := dv.(driver.Valuer); again {
			return nil, &valueError{dir: "the wire", t: t, v: v, reason: "driver.Valuer returned a driver.Valuer"}
		}
		v = dv
	}
	out, reason, err := valWire(t, v)
	if reason != "" {
		return nil, &valueError{dir: "the wire", t: t, v: v, reason: reason, err: err}
	}
	return out, nil
}

func valWire(t ValueType, v any) (out any, reason string, err error) {
	switch t {
	case TypeAuto:
		switch v := v.(type) {
		case time.Time:
			return FormatDateTime(v.UTC()), "", nil
		case []byte:
			return string(v), "", nil
		case [16]byte:
			return valFormatUUID(v), "", nil
		case float64:
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, "not representable in JSON", nil
			}
			return v, "", nil
		case float32:
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, "not representable in JSON", nil
			}
			return v, "", nil
		case json.Number:
			if !ujson.ValidNumber(v) {
				return nil, "not a JSON number", nil
			}
			return v, "", nil
		case json.RawMessage:
			d, err := ujson.Decode(v)
			if err != nil {
				return nil, "invalid JSON", err
			}
			return d, "", nil
		case string, bool, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64,
			ujson.Object, *ujson.Object, []any, []string, []ujson.Object, map[string]any:
			return v, "", nil
		default:
			return nil, "unsupported Go type", nil
		}
	case TypeInt:
		n, reason := valInt64(v)
		if reason != "" {
			return nil, reason, nil
		}
		return n, "", nil
	case TypeFloat, TypeDecimal:
		f, reason := valFloat64(v)
		if reason != "" {
			return nil, reason, nil
		}
		return f, "", nil
	case TypeString:
		s, reason := valText(v)
		if reason != "" {
			return nil, reason, nil
		}
		return s, "", nil
	case TypeBool:
		b, reason := valBool(v)
		if reason != "" {
			return nil, reason, nil
		}
		return b, "", nil
	case TypeDate:
		s, reason, err := valDate(v)
		if reason != "" {
			return nil, reason, err
		}
		return s, "", nil
	case TypeDateTime:
		tm, reason, err := valTime(v)
		if reason != "" {
			return nil, reason, err
		}
		return FormatDateTime(tm.UTC()), "", nil
	case TypeUUID:
		s, reason := valUUID(v)
		if reason != "" {
			return nil, reason, nil
		}
		return s, "", nil
	case TypeJSON:
		switch v := v.(type) {
		case string:
			d, err := ujson.Decode([]byte(v))
			if err != nil {
				return nil, "invalid JSON text", err
			}
			return d, "", nil
		case []byte:
			d, err := ujson.Decode(v)
			if err != nil {
				return nil, "invalid JSON text", err
			}
			return d, "", nil
		case json.RawMessage:
			d, err := ujson.Decode(v)
			if err != nil {
				return nil, "invalid JSON text", err
			}
			return d, "", nil
		case ujson.Object, *ujson.Object, []any, []string, []ujson.Object, map[string]any, bool, json.Number,
			int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
			return v, "", nil
		case float64:
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, "not representable in JSON", nil
			}
			return v, "", nil
		default:
			return nil, "unsupported Go type", nil
		}
	default:
		return nil, "unknown value type", nil
	}
}

// ColumnValue converts a wire value, as [ujson.Decode] produced it
// (json.Number, string, bool, nil, ujson.Object, []any; Go numbers are accepted
// too), into an argument for a database/sql statement writing a column of
// type t. It is lenient, as README §5.2 asks of a replica: decimals as a
// number or a string, UUIDs in either case, datetimes with any offset and
// fraction.
//
//   - TypeInt: int64 (a number or numeric string with an integral value);
//   - TypeFloat: float64;
//   - TypeDecimal: plain decimal text: a number's literal as written, or a
//     string validated ("10.50" stays "10.50"); exponent forms become plain
//     text ("1e-7" is "0.0000001");
//   - TypeString: string; a number gives its JSON text;
//   - TypeBool: bool (also 0/1 and "true"/"false"/"t"/"f"/"1"/"0");
//   - TypeDate: "YYYY-MM-DD" text (the date part of a datetime is taken);
//   - TypeDateTime: time.Time in UTC;
//   - TypeUUID: lowercase hyphenated text;
//   - TypeJSON: compact JSON text ([ujson.Append]);
//   - TypeAuto: json.Number as int64 when it is an integer literal that
//     fits (the literal text when it does not), as float64 otherwise;
//     ujson.Object, []any and maps as JSON text; other values unchanged.
//
// nil is always nil (SQL NULL), for TypeJSON too. Errors match
// [ErrInvalidValue] and name the Go type and the value.
func ColumnValue(t ValueType, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	out, reason, err := valColumn(t, v)
	if reason != "" {
		return nil, &valueError{dir: "a column", t: t, v: v, reason: reason, err: err}
	}
	return out, nil
}

func valColumn(t ValueType, v any) (out any, reason string, err error) {
	switch t {
	case TypeAuto:
		switch v := v.(type) {
		case json.Number:
			if n, err := strconv.ParseInt(string(v), 10, 64); err == nil {
				return n, "", nil
			}
			if valIsIntegerLiteral(string(v)) {
				return string(v), "", nil // too big for int64: keep it exact
			}
			f, err := strconv.ParseFloat(string(v), 64)
			if err != nil {
				return nil, "not a finite number", err
			}
			return f, "", nil
		case ujson.Object, *ujson.Object, []any, []string, []ujson.Object, map[string]any, json.RawMessage:
			b, err := ujson.Append(nil, v)
			if err != nil {
				return nil, "cannot encode as JSON", err
			}
			return string(b), "", nil
		default:
			return v, "", nil
		}
	case TypeInt:
		n, reason := valInt64(v)
		if reason != "" {
			return nil, reason, nil
		}
		return n, "", nil
	case TypeFloat:
		f, reason := valFloat64(v)
		if reason != "" {
			return nil, reason, nil
		}
		return f, "", nil
	case TypeDecimal:
		s, reason := valDecimalText(v)
		if reason != "" {
			return nil, reason, nil
		}
		return s, "", nil
	case TypeString:
		switch v := v.(type) {
		case string:
			return v, "", nil
		case []byte:
			return string(v), "", nil
		case json.Number, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64:
			b, err := ujson.Append(nil, v)
			if err != nil {
				return nil, "cannot write the number as text", err
			}
			return string(b), "", nil
		default:
			return nil, "not a string", nil
		}
	case TypeBool:
		b, reason := valBool(v)
		if reason != "" {
			return nil, reason, nil
		}
		return b, "", nil
	case TypeDate:
		s, reason, err := valDate(v)
		if reason != "" {
			return nil, reason, err
		}
		return s, "", nil
	case TypeDateTime:
		tm, reason, err := valTime(v)
		if reason != "" {
			return nil, reason, err
		}
		return tm.UTC(), "", nil
	case TypeUUID:
		s, reason := valUUID(v)
		if reason != "" {
			return nil, reason, nil
		}
		return s, "", nil
	case TypeJSON:
		b, err := ujson.Append(nil, v)
		if err != nil {
			return nil, "cannot encode as JSON", err
		}
		return string(b), "", nil
	default:
		return nil, "unknown value type", nil
	}
}

// valInt64 converts numbers and numeric text with an integral value.
func valInt64(v any) (int64, string) {
	switch v := v.(type) {
	case int64:
		return v, ""
	case int:
		return int64(v), ""
	case int32:
		return int64(v), ""
	case int16:
		return int64(v), ""
	case int8:
		return int64(v), ""
	case uint:
		return valUintToInt64(uint64(v))
	case uint8:
		return int64(v), ""
	case uint16:
		return int64(v), ""
	case uint32:
		return int64(v), ""
	case uint64:
		return valUintToInt64(v)
	case float64:
		return valFloatToInt64(v)
	case float32:
		return valFloatToInt64(float64(v))
	case json.Number:
		return valTextToInt64(string(v))
	case string:
		return valTextToInt64(v)
	case []byte:
		return valTextToInt64(string(v))
	default:
		return 0, "not an integer"
	}
}

func valUintToInt64(u uint64) (int64, string) {
	if u > math.MaxInt64 {
		return 0, "out of the int64 range"
	}
	return int64(u), ""
}

func valFloatToInt64(f float64) (int64, string) {
	if f != math.Trunc(f) || math.IsInf(f, 0) {
		return 0, "not an integer"
	}
	if f < -(1<<63) || f >= 1<<63 {
		return 0, "out of the int64 range"
	}
	return int64(f), ""
}

// valTextToInt64 parses an integer, or a decimal/exponent literal whose value
// is integral ("42.0", "1e3").
func valTextToInt64(s string) (int64, string) {
	s = strings.TrimSpace(s)
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, ""
	} else if errors.Is(err, strconv.ErrRange) {
		return 0, "out of the int64 range"
	}
	plain, ok := valDecimalPlain(s)
	if !ok {
		return 0, "not an integer"
	}
	intPart, frac, _ := strings.Cut(plain, ".")
	if strings.Trim(frac, "0") != "" {
		return 0, "not an integer"
	}
	neg := strings.HasPrefix(intPart, "-")
	digits := strings.TrimLeft(strings.TrimPrefix(intPart, "-"), "0")
	if len(digits) > 19 {
		return 0, "out of the int64 range"
	}
	if neg {
		digits = "-" + digits
	}
	if digits == "" || digits == "-" {
		return 0, ""
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil {
		return 0, "out of the int64 range"
	}
	return n, ""
}

func valFloat64(v any) (float64, string) {
	var f float64
	switch v := v.(type) {
	case float64:
		f = v
	case float32:
		// A 32-bit float (PostgreSQL real through pgx) means its shortest
		// 32-bit decimal, as Python prints it: 1.1, not 1.100000023841858.
		f, _ = strconv.ParseFloat(strconv.FormatFloat(float64(v), 'g', -1, 32), 64)
	case int64:
		f = float64(v)
	case int:
		f = float64(v)
	case int32:
		f = float64(v)
	case int16:
		f = float64(v)
	case int8:
		f = float64(v)
	case uint:
		f = float64(v)
	case uint8:
		f = float64(v)
	case uint16:
		f = float64(v)
	case uint32:
		f = float64(v)
	case uint64:
		f = float64(v)
	case json.Number:
		return valTextToFloat64(string(v))
	case string:
		return valTextToFloat64(v)
	case []byte:
		return valTextToFloat64(string(v))
	default:
		return 0, "not a number"
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, "not representable in JSON"
	}
	return f, ""
}

func valTextToFloat64(s string) (float64, string) {
	s = strings.TrimSpace(s)
	// Only decimal literals: no hex floats, "inf", "nan" or "1_000".
	if !valIsDecimalLiteral(s) {
		return 0, "not a number"
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) {
		return 0, "out of the float64 range"
	}
	return f, ""
}

// valText converts strings, bytes and numbers to text.
func valText(v any) (string, string) {
	switch v := v.(type) {
	case string:
		return v, ""
	case []byte:
		return string(v), ""
	case json.Number:
		return string(v), ""
	case int64, int, int8, int16, int32, uint, uint8, uint16, uint32, uint64:
		b, _ := ujson.Append(nil, v)
		return string(b), ""
	default:
		return "", "not a string"
	}
}

func valBool(v any) (bool, string) {
	switch v := v.(type) {
	case bool:
		return v, ""
	case int64:
		return valIntToBool(v)
	case int:
		return valIntToBool(int64(v))
	case int32:
		return valIntToBool(int64(v))
	case int16:
		return valIntToBool(int64(v))
	case int8:
		return valIntToBool(int64(v))
	case uint8:
		return valIntToBool(int64(v))
	case json.Number:
		return valTextToBool(string(v))
	case string:
		return valTextToBool(v)
	case []byte:
		if len(v) == 1 && v[0] <= 1 { // MySQL BIT(1)
			return v[0] == 1, ""
		}
		return valTextToBool(string(v))
	default:
		return false, "not a boolean"
	}
}

func valIntToBool(n int64) (bool, string) {
	switch n {
	case 0:
		return false, ""
	case 1:
		return true, ""
	}
	return false, "not a boolean (want 0 or 1)"
}

func valTextToBool(s string) (bool, string) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "t", "true", "1":
		return true, ""
	case "f", "false", "0":
		return false, ""
	}
	return false, "not a boolean"
}

// valDate returns "YYYY-MM-DD" from a time.Time (its own calendar date) or
// from text that starts with a date.
func valDate(v any) (string, string, error) {
	var s string
	switch v := v.(type) {
	case time.Time:
		return string(dtAppendDate(make([]byte, 0, 10), v)), "", nil
	case string:
		s = v
	case []byte:
		s = string(v)
	default:
		return "", "not a date", nil
	}
	s = strings.TrimSpace(s)
	p := dtParser{s: s}
	y, m, d, ok := p.date()
	if !ok || (p.i < len(s) && s[p.i] != ' ' && s[p.i] != 'T' && s[p.i] != 't') {
		return "", "not a date (want YYYY-MM-DD)", nil
	}
	if p.i < len(s) {
		// A datetime: check it is one, then keep its date as written.
		if _, err := ParseDateTime(s); err != nil {
			return "", "not a date", err
		}
	}
	if !dtValidDate(y, m, d) {
		return "", "not a valid calendar date", nil
	}
	tm := time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC)
	return string(dtAppendDate(make([]byte, 0, 10), tm)), "", nil
}

// valTime returns a time from a time.Time or text ParseDateTime accepts.
func valTime(v any) (time.Time, string, error) {
	var s string
	switch v := v.(type) {
	case time.Time:
		return v, "", nil
	case string:
		s = v
	case []byte:
		s = string(v)
	default:
		return time.Time{}, "not a datetime", nil
	}
	tm, err := ParseDateTime(s)
	if err != nil {
		return time.Time{}, "not a datetime", err
	}
	return tm, "", nil
}

// valUUID returns the lowercase hyphenated form of a UUID given as text (any
// case, with or without hyphens, optionally in braces or with a urn:uuid:
// prefix) or as 16 raw bytes.
func valUUID(v any) (string, string) {
	var s string
	switch v := v.(type) {
	case [16]byte:
		return valFormatUUID(v), ""
	case []byte:
		if len(v) == 16 {
			return valFormatUUID([16]byte(v)), ""
		}
		s = string(v)
	case string:
		s = v
	default:
		return "", "not a UUID"
	}
	s = strings.TrimSpace(s)
	if len(s) == 45 && strings.EqualFold(s[:9], "urn:uuid:") {
		s = s[9:]
	}
	if len(s) >= 2 && s[0] == '{' && s[len(s)-1] == '}' {
		s = s[1 : len(s)-1]
	}
	var raw [16]byte
	switch len(s) {
	case 36:
		if s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
			return "", "not a UUID"
		}
		s = s[:8] + s[9:13] + s[14:18] + s[19:23] + s[24:]
	case 32:
	default:
		return "", "not a UUID"
	}
	for i := range 16 {
		hi, lo := ujson.HexVal(s[2*i]), ujson.HexVal(s[2*i+1])
		if hi < 0 || lo < 0 {
			return "", "not a UUID"
		}
		raw[i] = byte(hi<<4 | lo)
	}
	return valFormatUUID(raw), ""
}

func valFormatUUID(u [16]byte) string {
	var b [36]byte
	j := 0
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b[j] = '-'
			j++
		}
		b[j] = ujson.HexDigits[c>>4]
		b[j+1] = ujson.HexDigits[c&0xf]
		j += 2
	}
	return string(b[:])
}

// valMaxDecimalExponent bounds exponents of decimal literals, so that "1e999999999"
// cannot make a gigabyte of zeros. PostgreSQL numeric allows 131072 digits
// before the point and 16383 after it.
const valMaxDecimalExponent = 140000

// valDecimalText returns plain decimal text for a decimal column.
func valDecimalText(v any) (string, string) {
	switch v := v.(type) {
	case json.Number:
		return valDecimalTextOf(string(v))
	case string:
		return valDecimalTextOf(v)
	case []byte:
		return valDecimalTextOf(string(v))
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return "", "not a finite number"
		}
		return strconv.FormatFloat(v, 'f', -1, 64), ""
	case float32:
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return "", "not a finite number"
		}
		return strconv.FormatFloat(float64(v), 'f', -1, 32), ""
	case int64, int, int8, int16, int32, uint, uint8, uint16, uint32, uint64:
		b, _ := ujson.Append(nil, v)
		return string(b), ""
	default:
		return "", "not a decimal number"
	}
}

func valDecimalTextOf(s string) (string, string) {
	plain, ok := valDecimalPlain(strings.TrimSpace(s))
	if !ok {
		return "", "not a decimal number"
	}
	return plain, ""
}

// valIsDecimalLiteral reports whether s is [+-]digits[.digits][e[+-]digits]
// (digits on at least one side of the point).
func valIsDecimalLiteral(s string) bool {
	_, _, _, _, ok := valSplitDecimal(s)
	return ok
}

// valIsIntegerLiteral reports whether s is [-]digits.
func valIsIntegerLiteral(s string) bool {
	s = strings.TrimPrefix(s, "-")
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// valSplitDecimal splits a decimal literal into its sign, integer digits,
// fraction digits and exponent.
func valSplitDecimal(s string) (neg bool, intPart, frac string, exp int, ok bool) {
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	start := i
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	intPart = s[start:i]
	if i < len(s) && s[i] == '.' {
		i++
		start = i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		frac = s[start:i]
	}
	if intPart == "" && frac == "" {
		return false, "", "", 0, false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		eneg := false
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			eneg = s[i] == '-'
			i++
		}
		start = i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			if exp <= valMaxDecimalExponent {
				exp = exp*10 + int(s[i]-'0')
			}
			i++
		}
		if i == start || exp > valMaxDecimalExponent {
			return false, "", "", 0, false
		}
		if eneg {
			exp = -exp
		}
	}
	if i != len(s) {
		return false, "", "", 0, false
	}
	return neg, intPart, frac, exp, true
}

// valDecimalPlain returns s as plain decimal text: a literal without an
// exponent is kept as written except for a leading '+' or a bare point
// (".5" is "0.5", "5." is "5"); an exponent is applied exactly by moving
// the point ("1.5e3" is "1500", "1e-7" is "0.0000001").
func valDecimalPlain(s string) (string, bool) {
	neg, intPart, frac, exp, ok := valSplitDecimal(s)
	if !ok {
		return "", false
	}
	if intPart == "" {
		intPart = "0"
	}
	if exp != 0 {
		digits := intPart + frac
		point := len(intPart) + exp // position of the point within digits
		switch {
		case point <= 0:
			intPart, frac = "0", strings.Repeat("0", -point)+digits
		case point >= len(digits):
			intPart, frac = digits+strings.Repeat("0", point-len(digits)), ""
		default:
			intPart, frac = digits[:point], digits[point:]
		}
		intPart = strings.TrimLeft(intPart, "0")
		if intPart == "" {
			intPart = "0"
		}
		frac = strings.TrimRight(frac, "0")
	}
	var b strings.Builder
	b.Grow(len(intPart) + len(frac) + 2)
	if neg {
		b.WriteByte('-')
	}
	b.WriteString(intPart)
	if frac != "" {
		b.WriteByte('.')
		b.WriteString(frac)
	}
	return b.String(), true
}

// FormatDateTime formats t the way django-cqrs writes a datetime:
// "YYYY-MM-DD HH:MM:SS[.ffffff]+HH:MM", with a space separator, a
// six-digit fraction only when the microseconds are not zero (nanoseconds
// are truncated to microseconds) and the offset of t's location always
// written ("+00:00" for UTC). Callers wanting the canonical wire form pass
// t.UTC().
func FormatDateTime(t time.Time) string {
	return string(dtAppendDateTime(make([]byte, 0, 32), t))
}

func dtAppendDateTime(dst []byte, t time.Time) []byte {
	dst = dtAppendDate(dst, t)
	dst = append(dst, ' ')
	hour, minute, sec := t.Clock()
	dst = dtAppend2(dst, hour)
	dst = append(dst, ':')
	dst = dtAppend2(dst, minute)
	dst = append(dst, ':')
	dst = dtAppend2(dst, sec)
	if us := t.Nanosecond() / 1000; us != 0 {
		dst = append(dst, '.')
		dst = dtAppendPadded(dst, us, 6)
	}
	_, off := t.Zone()
	return dtAppendOffset(dst, off)
}

// dtAppendDate appends t's calendar date as YYYY-MM-DD.
func dtAppendDate(dst []byte, t time.Time) []byte {
	year, month, day := t.Date()
	if year < 0 {
		dst = append(dst, '-')
		year = -year
	}
	dst = dtAppendPadded(dst, year, 4)
	dst = append(dst, '-')
	dst = dtAppend2(dst, int(month))
	dst = append(dst, '-')
	return dtAppend2(dst, day)
}

// dtAppendOffset appends a UTC offset as ±HH:MM (±HH:MM:SS when it has
// seconds, as Python writes it).
func dtAppendOffset(dst []byte, off int) []byte {
	if off < 0 {
		dst = append(dst, '-')
		off = -off
	} else {
		dst = append(dst, '+')
	}
	dst = dtAppend2(dst, off/3600)
	dst = append(dst, ':')
	dst = dtAppend2(dst, off/60%60)
	if off%60 != 0 {
		dst = append(dst, ':')
		dst = dtAppend2(dst, off%60)
	}
	return dst
}

func dtAppend2(dst []byte, n int) []byte {
	return append(dst, byte('0'+n/10%10), byte('0'+n%10))
}

func dtAppendPadded(dst []byte, n, width int) []byte {
	var buf [20]byte
	b := strconv.AppendInt(buf[:0], int64(n), 10)
	for i := len(b); i < width; i++ {
		dst = append(dst, '0')
	}
	return append(dst, b...)
}

// FormatExpires formats the expiry time of a message as django-cqrs does:
// "YYYY-MM-DDTHH:MM:SS+00:00", in UTC, truncated to whole seconds.
func FormatExpires(t time.Time) string {
	return string(AppendExpires(make([]byte, 0, 25), t))
}

// AppendExpires appends [FormatExpires] of t to dst.
func AppendExpires(dst []byte, t time.Time) []byte {
	t = t.UTC()
	dst = dtAppendDate(dst, t)
	dst = append(dst, 'T')
	hour, minute, sec := t.Clock()
	dst = dtAppend2(dst, hour)
	dst = append(dst, ':')
	dst = dtAppend2(dst, minute)
	dst = append(dst, ':')
	dst = dtAppend2(dst, sec)
	return append(dst, "+00:00"...)
}

// ParseDateTime parses a datetime leniently, accepting what django-cqrs
// peers send and what databases store as text:
//
//	YYYY-MM-DD[( |T)HH:MM[:SS[(.|,)fraction]]][offset]
//
// where month, day, hour, minute and second may have one or two digits, the
// fraction has any number of digits (kept to the nanosecond), and the
// offset is "Z", "UTC", ±HH, ±HHMM or ±HH:MM (optionally preceded by a
// space). A date alone means midnight. A value without an offset (naive) is
// taken as UTC. The result is in UTC when the offset is zero or absent,
// and in a fixed zone with the given offset otherwise. Years must be within
// 1..9999 (Python's range), also once converted to UTC.
func ParseDateTime(s string) (time.Time, error) {
	t, reason := dtParse(strings.TrimSpace(s))
	if reason != "" {
		return time.Time{}, fmt.Errorf("cqrsync: parsing datetime %s: %s", ujson.QuoteTrunc(s), reason)
	}
	return t, nil
}

type dtParser struct {
	s string
	i int
}

// num reads between minDigits and maxDigits decimal digits.
func (p *dtParser) num(minDigits, maxDigits int) (int, bool) {
	n, start := 0, p.i
	for p.i < len(p.s) && p.i-start < maxDigits && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
		n = n*10 + int(p.s[p.i]-'0')
		p.i++
	}
	return n, p.i-start >= minDigits
}

func (p *dtParser) eat(c byte) bool {
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

// date reads YYYY-M[M]-D[D].
func (p *dtParser) date() (y, m, d int, ok bool) {
	if y, ok = p.num(4, 4); !ok || !p.eat('-') {
		return 0, 0, 0, false
	}
	if m, ok = p.num(1, 2); !ok || !p.eat('-') {
		return 0, 0, 0, false
	}
	if d, ok = p.num(1, 2); !ok {
		return 0, 0, 0, false
	}
	return y, m, d, true
}

func dtValidDate(y, m, d int) bool {
	if y < 1 || y > 9999 || m < 1 || m > 12 || d < 1 {
		return false
	}
	return d <= time.Date(y, time.Month(m)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

func dtParse(s string) (time.Time, string) {
	p := dtParser{s: s}
	y, mo, d, ok := p.date()
	if !ok {
		return time.Time{}, "want YYYY-MM-DD[ HH:MM[:SS[.ffffff]]][offset]"
	}
	if !dtValidDate(y, mo, d) {
		return time.Time{}, "not a valid calendar date"
	}
	var h, mi, sec, nsec int
	if p.i < len(s) && (s[p.i] == ' ' || s[p.i] == 'T' || s[p.i] == 't') {
		p.i++
		if h, ok = p.num(1, 2); !ok || !p.eat(':') {
			return time.Time{}, "want HH:MM after the date"
		}
		if mi, ok = p.num(1, 2); !ok {
			return time.Time{}, "want HH:MM after the date"
		}
		if p.eat(':') {
			if sec, ok = p.num(1, 2); !ok {
				return time.Time{}, "want two digits of seconds"
			}
			if p.i < len(s) && (s[p.i] == '.' || s[p.i] == ',') {
				p.i++
				start := p.i
				for p.i < len(s) && s[p.i] >= '0' && s[p.i] <= '9' {
					if p.i-start < 9 {
						nsec = nsec*10 + int(s[p.i]-'0')
					}
					p.i++
				}
				if p.i == start {
					return time.Time{}, "want digits after the decimal point"
				}
				for n := p.i - start; n < 9; n++ {
					nsec *= 10
				}
			}
		}
		if h > 23 || mi > 59 || sec > 59 {
			return time.Time{}, "time of day out of range"
		}
	}
	loc := time.UTC
	if p.i < len(s) {
		if s[p.i] == ' ' && p.i+1 < len(s) {
			p.i++
		}
		switch rest := s[p.i:]; {
		case rest == "Z" || rest == "z" || rest == "UTC":
			p.i = len(s)
		case rest[0] == '+' || rest[0] == '-':
			neg := rest[0] == '-'
			p.i++
			oh, ok := p.num(2, 2)
			if !ok {
				return time.Time{}, "want an offset of the form ±HH:MM"
			}
			om := 0
			if p.i < len(s) {
				p.eat(':')
				if om, ok = p.num(2, 2); !ok {
					return time.Time{}, "want an offset of the form ±HH:MM"
				}
			}
			if oh > 23 || om > 59 {
				return time.Time{}, "offset out of range"
			}
			if off := oh*3600 + om*60; off != 0 {
				if neg {
					off = -off
				}
				loc = time.FixedZone("", off)
			}
		}
		if p.i != len(s) {
			return time.Time{}, "unexpected text " + ujson.QuoteTrunc(s[p.i:])
		}
	}
	t := time.Date(y, time.Month(mo), d, h, mi, sec, nsec, loc)
	if uy := t.UTC().Year(); uy < 1 || uy > 9999 {
		return time.Time{}, "year out of range once converted to UTC"
	}
	return t, ""
}
