package cqrsync

import "github.com/cqrsync/cqrsync/internal/ujson"

// Object is a JSON object that keeps the order of its keys, as Python dicts
// (and therefore django-cqrs payloads) do: the type of [Payload]'s
// instance_data, previous_data and meta.
//
// A nil Object encodes as JSON null; a non-nil empty Object (Object{})
// encodes as {}. [DecodeJSON] returns a non-nil Object for every JSON object,
// including {}. An Object normally holds each key once: its Set method
// replaces in place and [DecodeJSON] keeps the last value of a repeated key
// at the position of its first occurrence, as Python's json and ujson do.
// Its methods are Get, Set, Delete, Keys, Clone, MarshalJSON and
// UnmarshalJSON.
type Object = ujson.Object

// Member is one key/value pair of an [Object]: Key is the member name and
// Value holds any value [AppendJSON] accepts.
type Member = ujson.Member

// SyntaxError reports invalid JSON text found by [DecodeJSON]: Offset is the
// byte offset of the offending input (the input length when the text ends
// too early) and Msg describes the problem.
type SyntaxError = ujson.SyntaxError

// AppendJSON appends the JSON encoding of v to dst and returns the extended
// buffer. The output is byte-for-byte what Python's ujson 5.7 writes with
// its defaults (as django-cqrs uses it):
//
//   - compact: no spaces after ':' and ',';
//   - ASCII only: every non-ASCII character as a lowercase \uXXXX escape,
//     with a surrogate pair above U+FFFF; invalid UTF-8 bytes become \ufffd;
//   - '/' written as \/; '<', '>' and '&' not escaped; \" \\ \b \f \n \r \t
//     for those characters and \u00XX for the other control characters;
//   - floats in the shortest form that round-trips, in decimal notation when
//     the decimal exponent e satisfies -4 <= e < 16 (with ".0" for whole
//     numbers: 10.0, 0.0, -0.0) and in exponent form otherwise (1e-7,
//     1.2345678901234567e+19, 1e+16). float32 values use the shortest form
//     of the float32. NaN and infinities are an error.
//
// Supported types: nil, bool, string, json.Number (written verbatim once
// checked to be a JSON number), all Go integer types, float32, float64,
// Object, *Object, []any, []string, []Object, map[string]any (keys sorted)
// and json.RawMessage (decoded with [DecodeJSON] and re-encoded, so it comes
// out compact and escaped like the rest; an empty RawMessage is null).
// Any other type is an error naming the Go type.
func AppendJSON(dst []byte, v any) ([]byte, error) { return ujson.Append(dst, v) }

// DecodeJSON decodes one JSON value into the ordered model: objects become
// [Object] (non-nil, even when empty; a repeated key keeps its first
// position and its last value), arrays []any (non-nil), numbers json.Number
// holding the exact literal, strings string, true/false bool and null nil.
//
// It accepts exactly what encoding/json.Valid accepts: surrounding
// whitespace is allowed, anything else after the value is an error, and
// nesting deeper than 10000 levels is refused. Like encoding/json, invalid
// UTF-8 and unpaired surrogate escapes in strings are replaced by U+FFFD.
// Errors are *[SyntaxError].
//
// DecodeJSON does not retain data, but the strings it returns share one
// copy of it.
func DecodeJSON(data []byte) (any, error) { return ujson.Decode(data) }
