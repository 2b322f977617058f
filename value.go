package cqrsync

import (
	"time"

	"github.com/cqrsync/cqrsync/internal/wirevalue"
)

// ValueType says how a column's values are written on the wire and bound to
// the database (README §5.2 of the django-cqrs contract). Its String method
// returns the name [ParseValueType] accepts.
type ValueType = wirevalue.ValueType

// Column value types.
const (
	// TypeAuto passes values through, converting by Go type on a best-effort
	// basis (time.Time to a datetime string, []byte to string).
	TypeAuto = wirevalue.TypeAuto
	// TypeInt is an integer column: a JSON integer on the wire.
	TypeInt = wirevalue.TypeInt
	// TypeFloat is a floating-point column: a JSON number.
	TypeFloat = wirevalue.TypeFloat
	// TypeDecimal is a fixed-point column: a JSON number on the wire (through
	// a 64-bit float, as django-cqrs does), decimal text for the database.
	TypeDecimal = wirevalue.TypeDecimal
	// TypeString is a text column.
	TypeString = wirevalue.TypeString
	// TypeBool is a boolean column.
	TypeBool = wirevalue.TypeBool
	// TypeDate is a date column: "YYYY-MM-DD".
	TypeDate = wirevalue.TypeDate
	// TypeDateTime is a timestamp column: "YYYY-MM-DD HH:MM:SS[.ffffff]+00:00".
	TypeDateTime = wirevalue.TypeDateTime
	// TypeUUID is a UUID column: lowercase, hyphenated, 36 characters.
	TypeUUID = wirevalue.TypeUUID
	// TypeJSON is a JSON column: an embedded JSON value on the wire, JSON
	// text for the database.
	TypeJSON = wirevalue.TypeJSON
)

// ErrInvalidValue is matched (with errors.Is) by every error of
// [WireValue] and [ColumnValue]: the value cannot be converted to the
// column's type.
var ErrInvalidValue = wirevalue.ErrInvalidValue

// ParseValueType parses a value type name: "auto", "int", "float",
// "decimal", "string", "bool", "date", "datetime", "uuid" or "json"
// (case-insensitive, surrounding spaces ignored).
func ParseValueType(s string) (ValueType, error) { return wirevalue.ParseValueType(s) }

// ValueTypeOfSQL maps a declared SQL column type of any common dialect
// (PostgreSQL, MySQL, SQLite, ...) to a ValueType, case-insensitively.
// Length, precision and modifiers are ignored ("NUMERIC(14,4)" is
// TypeDecimal, "VARCHAR(200)" and "CHAR(36)" are TypeString), except that
// MySQL's TINYINT(1) and BIT(1) are TypeBool. Types it does not know
// (time, interval, arrays, binary, ...) give TypeAuto.
func ValueTypeOfSQL(declared string) ValueType { return wirevalue.ValueTypeOfSQL(declared) }

// WireValue converts a value read from a database (what a database/sql
// driver scans into an any: nil, int64, float64, bool, []byte, string,
// time.Time; also json.Number, the other Go integer and float types,
// [16]byte UUIDs and driver.Valuer implementations) into the canonical
// django-cqrs wire value for a column of type t, ready for [AppendJSON]:
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
//   - TypeJSON: the ordered value ([DecodeJSON]) of JSON text; decoded
//     values (Object, []any, ...) pass through;
//   - TypeAuto: time.Time as [FormatDateTime] in UTC, []byte as string,
//     [16]byte as a UUID, other encodable values unchanged.
//
// nil is always nil (JSON null). NaN and infinite floats are errors, since
// JSON cannot carry them. Errors match [ErrInvalidValue] and name the Go
// type and the value.
func WireValue(t ValueType, v any) (any, error) { return wirevalue.WireValue(t, v) }

// ColumnValue converts a value received on the wire (as [DecodeJSON]
// returns it) into the Go value to bind to a database column of type t. It
// is lenient, as README §5.2 asks of a replica: decimals as a number or a
// string, UUIDs in either case, datetimes with any offset and fraction.
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
//   - TypeJSON: compact JSON text ([AppendJSON]);
//   - TypeAuto: json.Number as int64 when it is an integer literal that
//     fits (the literal text when it does not), as float64 otherwise;
//     Object, []any and maps as JSON text; other values unchanged.
//
// nil is always nil (SQL NULL), for TypeJSON too. Errors match
// [ErrInvalidValue] and name the Go type and the value.
func ColumnValue(t ValueType, v any) (any, error) { return wirevalue.ColumnValue(t, v) }

// FormatDateTime formats t the way django-cqrs writes a datetime:
// "YYYY-MM-DD HH:MM:SS[.ffffff]+HH:MM", with a space separator, a
// six-digit fraction only when the microseconds are not zero (nanoseconds
// are truncated to microseconds) and the offset of t's location always
// written ("+00:00" for UTC). Callers wanting the canonical wire form pass
// t.UTC().
func FormatDateTime(t time.Time) string { return wirevalue.FormatDateTime(t) }

// FormatExpires formats the expiry time of a message as django-cqrs does:
// "YYYY-MM-DDTHH:MM:SS+00:00", in UTC, truncated to whole seconds.
func FormatExpires(t time.Time) string { return wirevalue.FormatExpires(t) }

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
func ParseDateTime(s string) (time.Time, error) { return wirevalue.ParseDateTime(s) }
