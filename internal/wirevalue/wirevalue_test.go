package wirevalue

import (
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/internal/ujson"
)

var (
	ist = time.FixedZone("IST", 5*3600+30*60)
	est = time.FixedZone("EST", -5*3600)
)

func TestValueTypeNames(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want ValueType
	}{
		{"auto", "auto", TypeAuto},
		{"int", "int", TypeInt},
		{"float", "float", TypeFloat},
		{"decimal", "decimal", TypeDecimal},
		{"string", "string", TypeString},
		{"bool", "bool", TypeBool},
		{"date", "date", TypeDate},
		{"datetime", "datetime", TypeDateTime},
		{"uuid", "uuid", TypeUUID},
		{"json", "json", TypeJSON},
		{"case and spaces", " DateTime ", TypeDateTime},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseValueType(tt.in)
			if err != nil || got != tt.want {
				t.Errorf("ParseValueType(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
			if back, err := ParseValueType(got.String()); err != nil || back != got {
				t.Errorf("ParseValueType(%v.String()) = %v, %v", got, back, err)
			}
		})
	}
	if _, err := ParseValueType("integer"); err == nil || !strings.Contains(err.Error(), `unknown type "integer"`) {
		t.Errorf("ParseValueType(integer) error = %v", err)
	}
	if s := ValueType(99).String(); s != "ValueType(99)" {
		t.Errorf("ValueType(99).String() = %q", s)
	}
}

func TestValueTypeOfSQL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		declared string
		want     ValueType
	}{
		{"INTEGER", TypeInt},
		{"integer", TypeInt},
		{"INT", TypeInt},
		{"BIGINT", TypeInt},
		{"bigint unsigned", TypeInt},
		{"SMALLINT", TypeInt},
		{"MEDIUMINT", TypeInt},
		{"int4", TypeInt},
		{"int8", TypeInt},
		{"SERIAL", TypeInt},
		{"BIGSERIAL", TypeInt},
		{"TINYINT", TypeInt},
		{"TINYINT(4)", TypeInt},
		{"TINYINT(1)", TypeBool},
		{"tinyint(1) unsigned", TypeBool},
		{"BIT(1)", TypeBool},
		{"BIT(8)", TypeAuto},
		{"BOOLEAN", TypeBool},
		{"bool", TypeBool},
		{"REAL", TypeFloat},
		{"DOUBLE PRECISION", TypeFloat},
		{"DOUBLE", TypeFloat},
		{"FLOAT", TypeFloat},
		{"float8", TypeFloat},
		{"NUMERIC(14,4)", TypeDecimal},
		{"numeric(14, 4)", TypeDecimal},
		{"DECIMAL", TypeDecimal},
		{"decimal(10,2) unsigned", TypeDecimal},
		{"VARCHAR(200)", TypeString},
		{"character varying(200)", TypeString},
		{"CHARACTER VARYING", TypeString},
		{"TEXT", TypeString},
		{"CHAR", TypeString},
		{"CHAR(36)", TypeString},
		{"NVARCHAR(50)", TypeString},
		{"LONGTEXT", TypeString},
		{"DATE", TypeDate},
		{"TIMESTAMP", TypeDateTime},
		{"TIMESTAMPTZ", TypeDateTime},
		{"TIMESTAMP WITH TIME ZONE", TypeDateTime},
		{"timestamp(6) with time zone", TypeDateTime},
		{"timestamp without time zone", TypeDateTime},
		{"DATETIME", TypeDateTime},
		{"DATETIME(6)", TypeDateTime},
		{"UUID", TypeUUID},
		{"JSON", TypeJSON},
		{"JSONB", TypeJSON},
		{"TIME", TypeAuto},
		{"time with time zone", TypeAuto},
		{"INTERVAL", TypeAuto},
		{"BYTEA", TypeAuto},
		{"BLOB", TypeAuto},
		{"integer[]", TypeAuto},
		{"", TypeAuto},
		{"  ", TypeAuto},
		{"geometry", TypeAuto},
	}
	for _, tt := range tests {
		t.Run(tt.declared, func(t *testing.T) {
			t.Parallel()
			if got := ValueTypeOfSQL(tt.declared); got != tt.want {
				t.Errorf("ValueTypeOfSQL(%q) = %v, want %v", tt.declared, got, tt.want)
			}
		})
	}
}

func TestFormatDateTime(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   time.Time
		want string
	}{
		{"microseconds", time.Date(2024, 2, 29, 13, 45, 30, 123456000, time.UTC), "2024-02-29 13:45:30.123456+00:00"},
		{"whole seconds", time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), "2024-01-01 00:00:00+00:00"},
		{"one microsecond", time.Date(2024, 5, 1, 10, 0, 0, 1000, time.UTC), "2024-05-01 10:00:00.000001+00:00"},
		{"nanoseconds truncated", time.Date(2024, 5, 1, 10, 0, 0, 123456789, time.UTC), "2024-05-01 10:00:00.123456+00:00"},
		{"below a microsecond", time.Date(2024, 5, 1, 10, 0, 0, 999, time.UTC), "2024-05-01 10:00:00+00:00"},
		{"positive offset", time.Date(2024, 3, 1, 12, 0, 0, 0, ist), "2024-03-01 12:00:00+05:30"},
		{"negative offset", time.Date(2024, 3, 1, 1, 2, 3, 0, est), "2024-03-01 01:02:03-05:00"},
		{"offset with seconds", time.Date(1900, 1, 1, 0, 0, 0, 0, time.FixedZone("LMT", -75)), "1900-01-01 00:00:00-00:01:15"},
		{"early year", time.Date(5, 1, 2, 3, 4, 5, 0, time.UTC), "0005-01-02 03:04:05+00:00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := FormatDateTime(tt.in); got != tt.want {
				t.Errorf("FormatDateTime(%v) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestFormatExpires(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   time.Time
		want string
	}{
		{"UTC", time.Date(2026, 11, 24, 15, 1, 46, 0, time.UTC), "2026-11-24T15:01:46+00:00"},
		{"fraction truncated", time.Date(2026, 11, 24, 15, 1, 46, 999999999, time.UTC), "2026-11-24T15:01:46+00:00"},
		{"converted to UTC", time.Date(2026, 11, 24, 20, 31, 46, 0, ist), "2026-11-24T15:01:46+00:00"},
		{"across midnight", time.Date(2026, 12, 31, 22, 0, 0, 0, est), "2027-01-01T03:00:00+00:00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := FormatExpires(tt.in); got != tt.want {
				t.Errorf("FormatExpires(%v) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseDateTime(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    time.Time
		wantOff int // expected offset of the result's zone, seconds
		wantErr string
	}{
		{"canonical microseconds", "2024-02-29 13:45:30.123456+00:00", time.Date(2024, 2, 29, 13, 45, 30, 123456000, time.UTC), 0, ""},
		{"canonical whole seconds", "2024-01-01 00:00:00+00:00", time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), 0, ""},
		{"non-UTC offset kept", "2024-03-01 12:00:00+05:30", time.Date(2024, 3, 1, 6, 30, 0, 0, time.UTC), 19800, ""},
		{"expires format", "2026-11-24T15:01:46+00:00", time.Date(2026, 11, 24, 15, 1, 46, 0, time.UTC), 0, ""},
		{"Z", "2024-05-01T10:00:00Z", time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC), 0, ""},
		{"lowercase t and z", "2024-05-01t10:00:00z", time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC), 0, ""},
		{"UTC suffix", "2024-05-01 10:00:00 UTC", time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC), 0, ""},
		{"naive is UTC", "2024-05-01 10:00:00", time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC), 0, ""},
		{"naive SQLite CURRENT_TIMESTAMP", "2024-05-01 10:00:00", time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC), 0, ""},
		{"no seconds", "2024-05-01 10:00+01:00", time.Date(2024, 5, 1, 9, 0, 0, 0, time.UTC), 3600, ""},
		{"one-digit fields", "2024-5-1 9:5:3", time.Date(2024, 5, 1, 9, 5, 3, 0, time.UTC), 0, ""},
		{"short fraction", "2024-05-01 10:00:00.5", time.Date(2024, 5, 1, 10, 0, 0, 500000000, time.UTC), 0, ""},
		{"nanoseconds", "2024-05-01 10:00:00.123456789", time.Date(2024, 5, 1, 10, 0, 0, 123456789, time.UTC), 0, ""},
		{"long fraction cut", "2024-05-01 10:00:00.1234567891234", time.Date(2024, 5, 1, 10, 0, 0, 123456789, time.UTC), 0, ""},
		{"comma fraction", "2024-05-01 10:00:00,25", time.Date(2024, 5, 1, 10, 0, 0, 250000000, time.UTC), 0, ""},
		{"compact offset", "2024-05-01T10:00:00-0500", time.Date(2024, 5, 1, 15, 0, 0, 0, time.UTC), -18000, ""},
		{"hour offset", "2024-05-01T10:00:00+02", time.Date(2024, 5, 1, 8, 0, 0, 0, time.UTC), 7200, ""},
		{"space before offset", "2024-05-01 10:00:00 +02:00", time.Date(2024, 5, 1, 8, 0, 0, 0, time.UTC), 7200, ""},
		{"minus zero offset", "2024-05-01 10:00:00-00:00", time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC), 0, ""},
		{"date only", "2024-02-29", time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC), 0, ""},
		{"surrounding spaces", "  2024-02-29 01:02:03+00:00 ", time.Date(2024, 2, 29, 1, 2, 3, 0, time.UTC), 0, ""},
		{"not a date", "tomorrow", time.Time{}, 0, "want YYYY-MM-DD"},
		{"empty", "", time.Time{}, 0, "want YYYY-MM-DD"},
		{"Feb 30", "2024-02-30 00:00:00", time.Time{}, 0, "not a valid calendar date"},
		{"Feb 29 non-leap", "2023-02-29", time.Time{}, 0, "not a valid calendar date"},
		{"month 13", "2024-13-01", time.Time{}, 0, "not a valid calendar date"},
		{"year 0", "0000-01-01", time.Time{}, 0, "not a valid calendar date"},
		{"hour 24", "2024-01-01 24:00:00", time.Time{}, 0, "out of range"},
		{"second 60", "2024-01-01 23:59:60", time.Time{}, 0, "out of range"},
		{"missing minutes", "2024-01-01 10", time.Time{}, 0, "want HH:MM"},
		{"dot without digits", "2024-01-01 10:00:00.", time.Time{}, 0, "digits after the decimal point"},
		{"bad offset", "2024-01-01 10:00:00+5", time.Time{}, 0, "offset"},
		{"offset hours out of range", "2024-01-01 10:00:00+24:00", time.Time{}, 0, "offset out of range"},
		{"trailing text", "2024-01-01 10:00:00+00:00 x", time.Time{}, 0, "unexpected text"},
		{"trailing letters", "2024-01-01 10:00:00PST", time.Time{}, 0, "unexpected text"},
		{"UTC year 0", "0001-01-01T00:30:00+01:00", time.Time{}, 0, "year out of range"},
		{"UTC year 10000", "9999-12-31T23:30:00-01:00", time.Time{}, 0, "year out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseDateTime(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "cqrsync: parsing datetime") {
					t.Errorf("ParseDateTime(%q) = %v, %v; want error %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseDateTime(%q): %v", tt.in, err)
			}
			if !got.Equal(tt.want) {
				t.Errorf("ParseDateTime(%q) = %v, want %v", tt.in, got, tt.want)
			}
			if _, off := got.Zone(); off != tt.wantOff {
				t.Errorf("ParseDateTime(%q) offset = %d, want %d", tt.in, off, tt.wantOff)
			}
			if tt.wantOff == 0 && got.Location() != time.UTC {
				t.Errorf("ParseDateTime(%q) location = %v, want UTC", tt.in, got.Location())
			}
		})
	}
}

func TestParseFormatDateTimeRoundTrip(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		"2024-02-29 13:45:30.123456+00:00",
		"2024-01-01 00:00:00+00:00",
		"2024-03-01 12:00:00+05:30",
		"2026-11-23 15:01:46.452153+00:00",
		"2024-05-01 10:00:00.000001+00:00",
		"1999-12-31 23:59:59.999999-08:00",
	} {
		got, err := ParseDateTime(s)
		if err != nil {
			t.Fatalf("ParseDateTime(%q): %v", s, err)
		}
		if f := FormatDateTime(got); f != s {
			t.Errorf("FormatDateTime(ParseDateTime(%q)) = %q", s, f)
		}
	}
}

type testValuer struct {
	v   any
	err error
}

func (v testValuer) Value() (driver.Value, error) { return v.v, v.err }

func TestWireValue(t *testing.T) {
	t.Parallel()
	uuidBytes := [16]byte{0x12, 0x34, 0x56, 0x78, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x12, 0x34, 0x56, 0x78}
	const uuidText = "12345678-1234-5678-9abc-def012345678"
	tests := []struct {
		name    string
		typ     ValueType
		in      any
		want    any
		wantErr string
	}{
		// nil is always null.
		{"nil int", TypeInt, nil, nil, ""},
		{"nil json", TypeJSON, nil, nil, ""},
		{"nil auto", TypeAuto, nil, nil, ""},
		// Int.
		{"int64", TypeInt, int64(42), int64(42), ""},
		{"int max", TypeInt, int64(2147483647), int64(2147483647), ""},
		{"int", TypeInt, -7, int64(-7), ""},
		{"int32", TypeInt, int32(5), int64(5), ""},
		{"uint64", TypeInt, uint64(5), int64(5), ""},
		{"uint64 overflow", TypeInt, uint64(math.MaxUint64), nil, "out of the int64 range"},
		{"int bytes", TypeInt, []byte("42"), int64(42), ""},
		{"int string", TypeInt, " -12 ", int64(-12), ""},
		{"int integral float", TypeInt, float64(3), int64(3), ""},
		{"int decimal text integral", TypeInt, "42.000", int64(42), ""},
		{"int fractional float", TypeInt, 3.5, nil, "not an integer"},
		{"int fractional text", TypeInt, "3.5", nil, "not an integer"},
		{"int text", TypeInt, "abc", nil, `cqrsync: converting string "abc" to int for the wire: not an integer`},
		{"int bool", TypeInt, true, nil, "not an integer"},
		{"int huge text", TypeInt, "99999999999999999999", nil, "out of the int64 range"},
		{"int json number", TypeInt, json.Number("7"), int64(7), ""},
		// Float.
		{"float64", TypeFloat, 0.1, 0.1, ""},
		{"float bytes", TypeFloat, []byte("1e-7"), 1e-7, ""},
		{"float from int", TypeFloat, int64(3), 3.0, ""},
		{"float32", TypeFloat, float32(0.5), 0.5, ""},
		{"float NaN", TypeFloat, math.NaN(), nil, "not representable in JSON"},
		{"float text NaN", TypeFloat, "NaN", nil, "not a number"},
		{"float text inf", TypeFloat, "inf", nil, "not a number"},
		{"float text hex", TypeFloat, "0x1p-2", nil, "not a number"},
		{"float overflow", TypeFloat, "1e400", nil, "out of the float64 range"},
		// Decimal: through a 64-bit float, as django-cqrs.
		{"decimal numeric bytes", TypeDecimal, []byte("1234.5600"), 1234.56, ""},
		{"decimal tiny", TypeDecimal, []byte("-0.0001"), -0.0001, ""},
		{"decimal string", TypeDecimal, "10.50", 10.5, ""},
		{"decimal whole", TypeDecimal, []byte("10"), 10.0, ""},
		{"decimal float64", TypeDecimal, 10.5, 10.5, ""},
		{"decimal int", TypeDecimal, int64(10), 10.0, ""},
		{"decimal garbage", TypeDecimal, "ten", nil, "not a number"},
		// String.
		{"string", TypeString, "Grüße", "Grüße", ""},
		{"string bytes", TypeString, []byte("abc"), "abc", ""},
		{"string from int", TypeString, int64(5), "5", ""},
		{"string from time", TypeString, time.Time{}, nil, "not a string"},
		// Bool.
		{"bool", TypeBool, true, true, ""},
		{"bool int 1", TypeBool, int64(1), true, ""},
		{"bool int 0", TypeBool, int64(0), false, ""},
		{"bool int 2", TypeBool, int64(2), nil, "want 0 or 1"},
		{"bool t", TypeBool, []byte("t"), true, ""},
		{"bool f", TypeBool, "f", false, ""},
		{"bool TRUE", TypeBool, "TRUE", true, ""},
		{"bool false", TypeBool, "false", false, ""},
		{"bool 1 text", TypeBool, "1", true, ""},
		{"bool 0 text", TypeBool, []byte("0"), false, ""},
		{"bool bit(1)", TypeBool, []byte{1}, true, ""},
		{"bool yes", TypeBool, "yes", nil, "not a boolean"},
		// Date.
		{"date time.Time", TypeDate, time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC), "2024-02-29", ""},
		{"date time.Time keeps its own calendar day", TypeDate, time.Date(2024, 2, 29, 23, 0, 0, 0, est), "2024-02-29", ""},
		{"date text", TypeDate, "2024-02-29", "2024-02-29", ""},
		{"date SQLite datetime text", TypeDate, []byte("2024-02-29 00:00:00"), "2024-02-29", ""},
		{"date ISO datetime text", TypeDate, "2024-02-29T10:00:00Z", "2024-02-29", ""},
		{"date short fields", TypeDate, "2024-3-1", "2024-03-01", ""},
		{"date invalid", TypeDate, "2023-02-29", nil, "not a valid calendar date"},
		{"date garbage", TypeDate, "29/02/2024", nil, "not a date"},
		{"date trailing garbage", TypeDate, "2024-02-29x", nil, "not a date"},
		{"date int", TypeDate, int64(1), nil, "not a date"},
		// DateTime: canonical text, in UTC.
		{"datetime UTC", TypeDateTime, time.Date(2024, 2, 29, 13, 45, 30, 123456789, time.UTC), "2024-02-29 13:45:30.123456+00:00", ""},
		{"datetime whole seconds", TypeDateTime, time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), "2024-01-01 00:00:00+00:00", ""},
		{"datetime other zone to UTC", TypeDateTime, time.Date(2024, 3, 1, 12, 0, 0, 0, ist), "2024-03-01 06:30:00+00:00", ""},
		{"datetime text with offset", TypeDateTime, "2024-03-01 12:00:00+05:30", "2024-03-01 06:30:00+00:00", ""},
		{"datetime SQLite naive text", TypeDateTime, []byte("2024-05-01 10:00:00"), "2024-05-01 10:00:00+00:00", ""},
		{"datetime ISO text", TypeDateTime, "2024-05-01T10:00:00.000001Z", "2024-05-01 10:00:00.000001+00:00", ""},
		{"datetime garbage", TypeDateTime, "now", nil, `cqrsync: converting string "now" to datetime for the wire: not a datetime: parsing datetime "now": want YYYY-MM-DD`},
		{"datetime int", TypeDateTime, int64(0), nil, "not a datetime"},
		// UUID.
		{"uuid lowercase", TypeUUID, uuidText, uuidText, ""},
		{"uuid uppercase", TypeUUID, "ABCDEF01-2345-6789-ABCD-EF0123456789", "abcdef01-2345-6789-abcd-ef0123456789", ""},
		{"uuid no hyphens", TypeUUID, []byte("12345678123456789ABCDEF012345678"), uuidText, ""},
		{"uuid braces", TypeUUID, "{" + uuidText + "}", uuidText, ""},
		{"uuid urn", TypeUUID, "urn:uuid:" + uuidText, uuidText, ""},
		{"uuid array", TypeUUID, uuidBytes, uuidText, ""},
		{"uuid raw bytes", TypeUUID, uuidBytes[:], uuidText, ""},
		{"uuid valuer", TypeUUID, testValuer{v: strings.ToUpper(uuidText)}, uuidText, ""},
		{"uuid bad hyphens", TypeUUID, "12345678x1234-5678-9abc-def012345678", nil, "not a UUID"},
		{"uuid bad hex", TypeUUID, "g2345678-1234-5678-9abc-def012345678", nil, "not a UUID"},
		{"uuid short", TypeUUID, "1234", nil, "not a UUID"},
		// JSON.
		{"json bytes", TypeJSON, []byte(`{"b": true, "k": [1, 2.5, {"n": null}], "u": "é"}`), ujson.Object{{Key: "b", Value: true}, {Key: "k", Value: []any{json.Number("1"), json.Number("2.5"), ujson.Object{{Key: "n", Value: nil}}}}, {Key: "u", Value: "é"}}, ""},
		{"json string", TypeJSON, `[1,"x"]`, []any{json.Number("1"), "x"}, ""},
		{"json scalar text", TypeJSON, `"abc"`, "abc", ""},
		{"json object passes", TypeJSON, ujson.Object{{Key: "a", Value: 1}}, ujson.Object{{Key: "a", Value: 1}}, ""},
		{"json invalid", TypeJSON, "{", nil, "invalid JSON text"},
		{"json unsupported", TypeJSON, time.Time{}, nil, "unsupported Go type"},
		// Auto.
		{"auto time", TypeAuto, time.Date(2024, 3, 1, 12, 0, 0, 0, ist), "2024-03-01 06:30:00+00:00", ""},
		{"auto bytes", TypeAuto, []byte("abc"), "abc", ""},
		{"auto int64", TypeAuto, int64(5), int64(5), ""},
		{"auto float", TypeAuto, 2.5, 2.5, ""},
		{"auto string", TypeAuto, "x", "x", ""},
		{"auto bool", TypeAuto, true, true, ""},
		{"auto uuid array", TypeAuto, uuidBytes, uuidText, ""},
		{"auto valuer", TypeAuto, sql.NullInt64{Int64: 3, Valid: true}, int64(3), ""},
		{"auto null valuer", TypeAuto, sql.NullString{}, nil, ""},
		{"auto NaN", TypeAuto, math.Inf(1), nil, "not representable"},
		{"auto unsupported", TypeAuto, struct{ A int }{1}, nil, "unsupported Go type"},
		{"valuer error", TypeAuto, testValuer{err: errors.New("boom")}, nil, "driver.Valuer failed: boom"},
		{"unknown type", ValueType(42), "x", nil, "unknown value type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := WireValue(tt.typ, tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("WireValue(%v, %#v) = %#v, %v; want error %q", tt.typ, tt.in, got, err, tt.wantErr)
				}
				if !errors.Is(err, ErrInvalidValue) || !strings.HasPrefix(err.Error(), "cqrsync: converting ") {
					t.Errorf("error %q does not match ErrInvalidValue or lacks the prefix", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("WireValue(%v, %#v): %v", tt.typ, tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("WireValue(%v, %#v) = %#v (%T), want %#v (%T)", tt.typ, tt.in, got, got, tt.want, tt.want)
			}
			if _, err := ujson.Append(nil, got); err != nil {
				t.Errorf("WireValue result %#v cannot be encoded: %v", got, err)
			}
		})
	}
}

// TestWireValueEncoding checks the wire text of converted database values
// against README §5.2 and value_formats.json.
func TestWireValueEncoding(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		typ  ValueType
		in   any
		want string
	}{
		{"decimal 1234.5600", TypeDecimal, []byte("1234.5600"), "1234.56"},
		{"decimal -0.0001", TypeDecimal, []byte("-0.0001"), "-0.0001"},
		{"decimal 10.50 read back", TypeDecimal, []byte("10.50"), "10.5"},
		{"decimal 10 as float", TypeDecimal, []byte("10.0000"), "10.0"},
		{"float 0.1", TypeFloat, 0.1, "0.1"},
		{"float 1e-7", TypeFloat, 1e-7, "1e-7"},
		{"float big", TypeFloat, 1.2345678901234567e+19, "1.2345678901234567e+19"},
		{"int", TypeInt, int64(2147483647), "2147483647"},
		{"date", TypeDate, time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC), `"2024-02-29"`},
		{"datetime", TypeDateTime, time.Date(2024, 2, 29, 13, 45, 30, 123456000, time.UTC), `"2024-02-29 13:45:30.123456+00:00"`},
		{"datetime read back", TypeDateTime, time.Date(2024, 3, 1, 12, 0, 0, 0, ist), `"2024-03-01 06:30:00+00:00"`},
		{"uuid read back", TypeUUID, "ABCDEF01-2345-6789-ABCD-EF0123456789", `"abcdef01-2345-6789-abcd-ef0123456789"`},
		{"jsonb text", TypeJSON, []byte(`{"b": true, "k": [1, 2.5, {"n": null}], "u": "é"}`), `{"b":true,"k":[1,2.5,{"n":null}],"u":"\u00e9"}`},
		{"bool", TypeBool, []byte("t"), "true"},
		{"null", TypeDateTime, nil, "null"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w, err := WireValue(tt.typ, tt.in)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ujson.Append(nil, w)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("wire text = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestColumnValue(t *testing.T) {
	t.Parallel()
	const uuidText = "abcdef01-2345-6789-abcd-ef0123456789"
	tests := []struct {
		name    string
		typ     ValueType
		in      any
		want    any
		wantErr string
	}{
		{"nil", TypeInt, nil, nil, ""},
		{"nil json is SQL NULL", TypeJSON, nil, nil, ""},
		// Int.
		{"int", TypeInt, json.Number("42"), int64(42), ""},
		{"int negative", TypeInt, json.Number("-7"), int64(-7), ""},
		{"int max", TypeInt, json.Number("9223372036854775807"), int64(math.MaxInt64), ""},
		{"int overflow", TypeInt, json.Number("9223372036854775808"), nil, "out of the int64 range"},
		{"int integral literal", TypeInt, json.Number("1.0"), int64(1), ""},
		{"int exponent literal", TypeInt, json.Number("1e3"), int64(1000), ""},
		{"int huge exponent", TypeInt, json.Number("1e100000"), nil, "out of the int64 range"},
		{"int fractional", TypeInt, json.Number("1.5"), nil, "not an integer"},
		{"int string", TypeInt, "42", int64(42), ""},
		{"int Go", TypeInt, 42, int64(42), ""},
		{"int bool", TypeInt, true, nil, `cqrsync: converting bool true to int for a column: not an integer`},
		{"int object", TypeInt, ujson.Object{}, nil, "not an integer"},
		// Float.
		{"float", TypeFloat, json.Number("0.1"), 0.1, ""},
		{"float exponent", TypeFloat, json.Number("1e-7"), 1e-7, ""},
		{"float int", TypeFloat, json.Number("3"), 3.0, ""},
		{"float string", TypeFloat, "2.5", 2.5, ""},
		{"float overflow", TypeFloat, json.Number("1e400"), nil, "out of the float64 range"},
		{"float bool", TypeFloat, false, nil, "not a number"},
		// Decimal: exact text.
		{"decimal number", TypeDecimal, json.Number("1234.56"), "1234.56", ""},
		{"decimal tiny", TypeDecimal, json.Number("-0.0001"), "-0.0001", ""},
		{"decimal whole float", TypeDecimal, json.Number("10.0"), "10.0", ""},
		{"decimal string kept", TypeDecimal, "10.50", "10.50", ""},
		{"decimal exponent", TypeDecimal, json.Number("1e-7"), "0.0000001", ""},
		{"decimal big exponent", TypeDecimal, json.Number("1.2345678901234567e+19"), "12345678901234567000", ""},
		{"decimal negative exponent string", TypeDecimal, "-1.5E2", "-150", ""},
		{"decimal exponent zero", TypeDecimal, "2.50e0", "2.50", ""},
		{"decimal plus sign", TypeDecimal, "+3.5", "3.5", ""},
		{"decimal bare point", TypeDecimal, ".5", "0.5", ""},
		{"decimal trailing point", TypeDecimal, "5.", "5", ""},
		{"decimal spaces", TypeDecimal, " 1.25 ", "1.25", ""},
		{"decimal Go float", TypeDecimal, 10.5, "10.5", ""},
		{"decimal Go int", TypeDecimal, int64(7), "7", ""},
		{"decimal NaN text", TypeDecimal, "NaN", nil, "not a decimal number"},
		{"decimal garbage", TypeDecimal, "1.2.3", nil, "not a decimal number"},
		{"decimal empty", TypeDecimal, "", nil, "not a decimal number"},
		{"decimal bool", TypeDecimal, true, nil, "not a decimal number"},
		{"decimal absurd exponent", TypeDecimal, json.Number("1e999999999"), nil, "not a decimal number"},
		// String.
		{"string", TypeString, "Grüße", "Grüße", ""},
		{"string from number", TypeString, json.Number("12"), "12", ""},
		{"string from Go float", TypeString, 10.0, "10.0", ""},
		{"string from bool", TypeString, true, nil, "not a string"},
		{"string from object", TypeString, ujson.Object{}, nil, "not a string"},
		// Bool.
		{"bool", TypeBool, true, true, ""},
		{"bool number", TypeBool, json.Number("0"), false, ""},
		{"bool text", TypeBool, "true", true, ""},
		{"bool bad", TypeBool, "maybe", nil, "not a boolean"},
		// Date.
		{"date", TypeDate, "2024-02-29", "2024-02-29", ""},
		{"date from datetime", TypeDate, "2024-02-29 13:45:30.123456+00:00", "2024-02-29", ""},
		{"date from datetime keeps written day", TypeDate, "2024-03-01 00:30:00+05:30", "2024-03-01", ""},
		{"date bad datetime", TypeDate, "2024-02-29 99:00", nil, "not a date"},
		{"date number", TypeDate, json.Number("20240229"), nil, "not a date"},
		// DateTime.
		{"datetime canonical", TypeDateTime, "2024-02-29 13:45:30.123456+00:00", time.Date(2024, 2, 29, 13, 45, 30, 123456000, time.UTC), ""},
		{"datetime offset to UTC", TypeDateTime, "2024-03-01 12:00:00+05:30", time.Date(2024, 3, 1, 6, 30, 0, 0, time.UTC), ""},
		{"datetime whole seconds", TypeDateTime, "2024-01-01 00:00:00+00:00", time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), ""},
		{"datetime T and Z", TypeDateTime, "2024-05-01T10:00:00.5Z", time.Date(2024, 5, 1, 10, 0, 0, 500000000, time.UTC), ""},
		{"datetime naive", TypeDateTime, "2024-05-01 10:00:00", time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC), ""},
		{"datetime garbage", TypeDateTime, "soon", nil, "not a datetime"},
		{"datetime number", TypeDateTime, json.Number("1"), nil, "not a datetime"},
		// UUID.
		{"uuid lowercase", TypeUUID, uuidText, uuidText, ""},
		{"uuid uppercase", TypeUUID, "ABCDEF01-2345-6789-ABCD-EF0123456789", uuidText, ""},
		{"uuid no hyphens", TypeUUID, "ABCDEF0123456789ABCDEF0123456789", uuidText, ""},
		{"uuid bad", TypeUUID, "not-a-uuid", nil, "not a UUID"},
		{"uuid number", TypeUUID, json.Number("1"), nil, "not a UUID"},
		// JSON.
		{"json object", TypeJSON, ujson.Object{{Key: "k", Value: []any{json.Number("1"), json.Number("2.5"), ujson.Object{{Key: "n", Value: nil}}}}, {Key: "u", Value: "é"}, {Key: "b", Value: true}}, `{"k":[1,2.5,{"n":null}],"u":"\u00e9","b":true}`, ""},
		{"json list", TypeJSON, []any{"a"}, `["a"]`, ""},
		{"json scalar string", TypeJSON, "abc", `"abc"`, ""},
		{"json number", TypeJSON, json.Number("1.5"), `1.5`, ""},
		{"json bool", TypeJSON, false, `false`, ""},
		{"json unsupported", TypeJSON, struct{}{}, nil, "cannot encode as JSON"},
		// Auto.
		{"auto integer", TypeAuto, json.Number("42"), int64(42), ""},
		{"auto float", TypeAuto, json.Number("2.5"), 2.5, ""},
		{"auto integral float literal", TypeAuto, json.Number("1e2"), 100.0, ""},
		{"auto huge integer kept exact", TypeAuto, json.Number("123456789012345678901234567890"), "123456789012345678901234567890", ""},
		{"auto float overflow", TypeAuto, json.Number("1e400"), nil, "not a finite number"},
		{"auto object", TypeAuto, ujson.Object{{Key: "a", Value: json.Number("1")}}, `{"a":1}`, ""},
		{"auto list", TypeAuto, []any{}, `[]`, ""},
		{"auto string", TypeAuto, "x", "x", ""},
		{"auto bool", TypeAuto, true, true, ""},
		{"unknown type", ValueType(-1), "x", nil, "unknown value type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ColumnValue(tt.typ, tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ColumnValue(%v, %#v) = %#v, %v; want error %q", tt.typ, tt.in, got, err, tt.wantErr)
				}
				if !errors.Is(err, ErrInvalidValue) || !strings.HasPrefix(err.Error(), "cqrsync: converting ") {
					t.Errorf("error %q does not match ErrInvalidValue or lacks the prefix", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ColumnValue(%v, %#v): %v", tt.typ, tt.in, err)
			}
			if tm, ok := got.(time.Time); ok {
				want := tt.want.(time.Time)
				if !tm.Equal(want) || tm.Location() != time.UTC {
					t.Errorf("ColumnValue(%v, %#v) = %v, want %v in UTC", tt.typ, tt.in, tm, want)
				}
				return
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ColumnValue(%v, %#v) = %#v (%T), want %#v (%T)", tt.typ, tt.in, got, got, tt.want, tt.want)
			}
		})
	}
}

// TestValueFormatsVector feeds every example of value_formats.json through
// ColumnValue with the type it stands for, and back through WireValue: the
// canonical examples must come back as themselves.
func TestValueFormatsVector(t *testing.T) {
	t.Parallel()
	data, err := readVector(t, "value_formats.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Examples map[string]json.RawMessage `json:"examples"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	typeOf := func(key string) (ValueType, bool) {
		switch {
		case strings.HasPrefix(key, "datetime"), key == "cqrs_updated":
			return TypeDateTime, true // canonical unless "as_assigned"
		case key == "date":
			return TypeDate, true
		case strings.HasPrefix(key, "uuid"):
			return TypeUUID, true
		case strings.HasPrefix(key, "decimal"):
			return TypeDecimal, true
		case strings.HasPrefix(key, "float"):
			return TypeFloat, true
		case strings.HasPrefix(key, "json_field"):
			return TypeJSON, true
		}
		return TypeAuto, false
	}
	checked := 0
	for key, raw := range doc.Examples {
		typ, ok := typeOf(key)
		if !ok {
			continue
		}
		wire, err := ujson.Decode(raw)
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		col, err := ColumnValue(typ, wire)
		if err != nil {
			t.Errorf("%s: ColumnValue(%v, %#v): %v", key, typ, wire, err)
			continue
		}
		back, err := WireValue(typ, col)
		if err != nil {
			t.Errorf("%s: WireValue(%v, %#v): %v", key, typ, col, err)
			continue
		}
		checked++
		if strings.Contains(key, "as_assigned") || strings.Contains(key, "in memory") || strings.Contains(key, "(create path)") {
			continue // not canonical: only its acceptance matters
		}
		got, err := ujson.Append(nil, back)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := ujson.Append(nil, wire)
		if typ == TypeFloat || typ == TypeDecimal {
			// value_formats.json itself was written by Python's json (1e-07).
			f, _ := ColumnValue(TypeFloat, wire)
			want, _ = ujson.Append(nil, f)
		}
		if string(got) != string(want) {
			t.Errorf("%s: wire %s -> column %#v -> wire %s, want %s", key, raw, col, got, want)
		}
	}
	if checked < 12 {
		t.Errorf("checked %d examples of value_formats.json, want at least 12", checked)
	}
}

func readVector(tb testing.TB, name string) ([]byte, error) {
	tb.Helper()
	return os.ReadFile(filepath.Join(cqrsynctesting.VectorsDir(tb), name))
}
