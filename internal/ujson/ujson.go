// Package ujson is the JSON codec of the django-cqrs wire format: an
// order-keeping object model ([Object]) and an encoder that writes
// byte-for-byte what Python's ujson 5.7 writes with django-cqrs's settings.
// The root package re-exports its public names (cqrsync.Object,
// cqrsync.AppendJSON, cqrsync.DecodeJSON).
package ujson

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"sync"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/cqrsync/cqrsync/internal/errtext"
)

// Object is a JSON object that keeps the order of its keys, as Python dicts
// (and therefore django-cqrs payloads) do.
//
// A nil Object encodes as JSON null; a non-nil empty Object (Object{})
// encodes as {}. [Decode] returns a non-nil Object for every JSON object,
// including {}.
//
// An Object normally holds each key once: [Object.Set] replaces in place and
// [Decode] keeps the last value of a repeated key at the position of its
// first occurrence, as Python's json and ujson do.
type Object []Member

// Member is one key/value pair of an [Object]. Value holds any value
// [Append] accepts.
type Member struct {
	// Key is the member name.
	Key string
	// Value is the member value.
	Value any
}

// Get returns the value stored under key and whether the key is present.
func (o Object) Get(key string) (any, bool) {
	for i := range o {
		if o[i].Key == key {
			return o[i].Value, true
		}
	}
	return nil, false
}

// Set stores v under key: it replaces the value in place when key is present
// and appends a new member otherwise.
func (o *Object) Set(key string, v any) {
	for i := range *o {
		if (*o)[i].Key == key {
			(*o)[i].Value = v
			return
		}
	}
	*o = append(*o, Member{Key: key, Value: v})
}

// Delete removes every member named key, keeping the order of the others.
// It does nothing when key is absent. A non-nil Object stays non-nil.
func (o *Object) Delete(key string) {
	if *o == nil {
		return
	}
	*o = slices.DeleteFunc(*o, func(m Member) bool { return m.Key == key })
}

// Keys returns the member names in order.
func (o Object) Keys() []string {
	if o == nil {
		return nil
	}
	keys := make([]string, len(o))
	for i := range o {
		keys[i] = o[i].Key
	}
	return keys
}

// Clone returns a deep copy of o: nested Objects, *Objects, []any and
// map[string]any values are copied too; other values (strings, numbers,
// booleans) are immutable and shared. Clone of a nil Object is nil.
func (o Object) Clone() Object {
	if o == nil {
		return nil
	}
	c := make(Object, len(o))
	for i, m := range o {
		c[i] = Member{Key: m.Key, Value: cloneValue(m.Value)}
	}
	return c
}

func cloneValue(v any) any {
	switch v := v.(type) {
	case Object:
		return v.Clone()
	case *Object:
		if v == nil {
			return v
		}
		c := v.Clone()
		return &c
	case []any:
		if v == nil {
			return v
		}
		c := make([]any, len(v))
		for i, e := range v {
			c[i] = cloneValue(e)
		}
		return c
	case map[string]any:
		if v == nil {
			return v
		}
		c := make(map[string]any, len(v))
		for k, e := range v {
			c[k] = cloneValue(e)
		}
		return c
	case json.RawMessage:
		return slices.Clone(v)
	default:
		return v
	}
}

// MarshalJSON encodes o with [Append], keeping its key order.
func (o Object) MarshalJSON() ([]byte, error) {
	return Append(nil, o)
}

// UnmarshalJSON decodes a JSON object (or null, which gives a nil Object)
// with [Decode], keeping its key order.
func (o *Object) UnmarshalJSON(data []byte) error {
	v, err := Decode(data)
	if err != nil {
		return err
	}
	switch v := v.(type) {
	case nil:
		*o = nil
	case Object:
		*o = v
	default:
		return fmt.Errorf("cqrsync: decoding object: got %s, want an object", Kind(v))
	}
	return nil
}

// maxDepth bounds the nesting of arrays and objects, for decoding and
// encoding alike. It is the limit of encoding/json.
const maxDepth = 10000

// Append appends the JSON encoding of v to dst and returns the extended
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
// and json.RawMessage (decoded with [Decode] and re-encoded, so it comes
// out compact and escaped like the rest; an empty RawMessage is null).
// Any other type is an error naming the Go type.
func Append(dst []byte, v any) ([]byte, error) {
	return AppendValue(dst, v, 0)
}

// AppendValue is Append of a value nested depth levels deep (a member
// of a top-level object is at depth 1), for encoders that write the
// enclosing levels themselves.
func AppendValue(dst []byte, v any, depth int) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case string:
		return AppendString(dst, v), nil
	case json.Number:
		if !ValidNumber(v) {
			return dst, fmt.Errorf("cqrsync: encoding JSON: invalid json.Number %s", QuoteTrunc(string(v)))
		}
		return append(dst, v...), nil
	case bool:
		if v {
			return append(dst, "true"...), nil
		}
		return append(dst, "false"...), nil
	case int64:
		return strconv.AppendInt(dst, v, 10), nil
	case int:
		return strconv.AppendInt(dst, int64(v), 10), nil
	case float64:
		return appendFloat(dst, v, 64)
	case Object:
		return AppendObject(dst, v, depth)
	case []any:
		if v == nil {
			return append(dst, "null"...), nil
		}
		if depth >= maxDepth {
			return dst, errTooDeep
		}
		dst = append(dst, '[')
		for i, e := range v {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = AppendValue(dst, e, depth+1); err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	case *Object:
		if v == nil {
			return append(dst, "null"...), nil
		}
		return AppendObject(dst, *v, depth)
	case int8:
		return strconv.AppendInt(dst, int64(v), 10), nil
	case int16:
		return strconv.AppendInt(dst, int64(v), 10), nil
	case int32:
		return strconv.AppendInt(dst, int64(v), 10), nil
	case uint:
		return strconv.AppendUint(dst, uint64(v), 10), nil
	case uint8:
		return strconv.AppendUint(dst, uint64(v), 10), nil
	case uint16:
		return strconv.AppendUint(dst, uint64(v), 10), nil
	case uint32:
		return strconv.AppendUint(dst, uint64(v), 10), nil
	case uint64:
		return strconv.AppendUint(dst, v, 10), nil
	case float32:
		return appendFloat(dst, float64(v), 32)
	case []string:
		if v == nil {
			return append(dst, "null"...), nil
		}
		dst = append(dst, '[')
		for i, e := range v {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = AppendString(dst, e)
		}
		return append(dst, ']'), nil
	case []Object:
		if v == nil {
			return append(dst, "null"...), nil
		}
		if depth >= maxDepth {
			return dst, errTooDeep
		}
		dst = append(dst, '[')
		for i, e := range v {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = AppendObject(dst, e, depth+1); err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	case map[string]any:
		if v == nil {
			return append(dst, "null"...), nil
		}
		if depth >= maxDepth {
			return dst, errTooDeep
		}
		dst = append(dst, '{')
		for i, k := range slices.Sorted(maps.Keys(v)) {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = AppendString(dst, k)
			dst = append(dst, ':')
			var err error
			if dst, err = AppendValue(dst, v[k], depth+1); err != nil {
				return dst, err
			}
		}
		return append(dst, '}'), nil
	case json.RawMessage:
		if len(v) == 0 {
			return append(dst, "null"...), nil
		}
		d, err := Decode(v)
		if err != nil {
			return dst, errtext.Errorf("cqrsync: encoding JSON: invalid json.RawMessage: %w", err)
		}
		return AppendValue(dst, d, depth)
	default:
		return dst, fmt.Errorf("cqrsync: encoding JSON: unsupported Go type %T", v)
	}
}

var errTooDeep = fmt.Errorf("cqrsync: encoding JSON: nesting deeper than %d levels", maxDepth)

// AppendObject appends o, nested depth levels deep, as AppendValue does.
func AppendObject(dst []byte, o Object, depth int) ([]byte, error) {
	if o == nil {
		return append(dst, "null"...), nil
	}
	if depth >= maxDepth {
		return dst, errTooDeep
	}
	dst = append(dst, '{')
	for i := range o {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = AppendString(dst, o[i].Key)
		dst = append(dst, ':')
		var err error
		if dst, err = AppendValue(dst, o[i].Value, depth+1); err != nil {
			return dst, err
		}
	}
	return append(dst, '}'), nil
}

// HexDigits are the lowercase hexadecimal digits, as ujson writes escapes.
const HexDigits = "0123456789abcdef"

// plain marks the ASCII bytes ujson writes unchanged.
var plain = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = true
	}
	t['"'] = false
	t['\\'] = false
	t['/'] = false
	return t
}()

// AppendString appends s as a ujson string literal (see Append).
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if plain[c] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\', '/':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default:
				dst = append(dst, '\\', 'u', '0', '0', HexDigits[c>>4], HexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		dst = append(dst, s[start:i]...)
		r, size := utf8.DecodeRuneInString(s[i:])
		if r > 0xffff {
			r1, r2 := utf16.EncodeRune(r)
			dst = jsonAppendU4(dst, r1)
			dst = jsonAppendU4(dst, r2)
		} else {
			dst = jsonAppendU4(dst, r)
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

func jsonAppendU4(dst []byte, r rune) []byte {
	return append(dst, '\\', 'u', HexDigits[r>>12&0xf], HexDigits[r>>8&0xf], HexDigits[r>>4&0xf], HexDigits[r&0xf])
}

// appendFloat writes f the way double-conversion's ToShortest does with
// ujson's settings (EMIT_TRAILING_DECIMAL_POINT,
// EMIT_TRAILING_ZERO_AFTER_POINT, EMIT_POSITIVE_EXPONENT_SIGN, decimal
// notation for exponents in [-4, 16)).
func appendFloat(dst []byte, f float64, bitSize int) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return dst, fmt.Errorf("cqrsync: encoding JSON: %v is not representable in JSON", f)
	}
	var buf [40]byte
	// Shortest round-trip digits in the form [-]d[.ddd]e±dd.
	b := strconv.AppendFloat(buf[:0], f, 'e', -1, bitSize)
	if b[0] == '-' {
		dst = append(dst, '-')
		b = b[1:]
	}
	e := len(b) - 1
	for b[e] != 'e' {
		e--
	}
	exp := 0
	for _, c := range b[e+2:] {
		exp = exp*10 + int(c-'0')
	}
	if b[e+1] == '-' {
		exp = -exp
	}
	// Gather the significant digits without the decimal point.
	var digBuf [24]byte
	digits := append(digBuf[:0], b[0])
	if e > 1 {
		digits = append(digits, b[2:e]...)
	}
	switch {
	case exp >= 0 && exp < 16:
		intLen := exp + 1
		if len(digits) <= intLen {
			dst = append(dst, digits...)
			for range intLen - len(digits) {
				dst = append(dst, '0')
			}
			dst = append(dst, '.', '0')
		} else {
			dst = append(dst, digits[:intLen]...)
			dst = append(dst, '.')
			dst = append(dst, digits[intLen:]...)
		}
	case exp < 0 && exp >= -4:
		dst = append(dst, '0', '.')
		for range -exp - 1 {
			dst = append(dst, '0')
		}
		dst = append(dst, digits...)
	default:
		dst = append(dst, digits[0])
		if len(digits) > 1 {
			dst = append(dst, '.')
			dst = append(dst, digits[1:]...)
		}
		dst = append(dst, 'e')
		if exp < 0 {
			dst = append(dst, '-')
			exp = -exp
		} else {
			dst = append(dst, '+')
		}
		dst = strconv.AppendInt(dst, int64(exp), 10)
	}
	return dst, nil
}

// ValidNumber reports whether s is a JSON number literal.
func ValidNumber[T ~string | ~[]byte](s T) bool {
	n, ok := scanNumber(s, 0)
	return ok && n == len(s)
}

// scanNumber scans the longest JSON number starting at s[i] and returns
// the index after it. ok is false when no valid number starts at i.
func scanNumber[T ~string | ~[]byte](s T, i int) (end int, ok bool) {
	if i < len(s) && s[i] == '-' {
		i++
	}
	if i >= len(s) {
		return i, false
	}
	switch c := s[i]; {
	case c == '0':
		i++
	case c >= '1' && c <= '9':
		i++
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	default:
		return i, false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if i >= len(s) || s[i] < '0' || s[i] > '9' {
			return i, false
		}
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if i >= len(s) || s[i] < '0' || s[i] > '9' {
			return i, false
		}
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	}
	return i, true
}

// SyntaxError reports invalid JSON text found by [Decode].
type SyntaxError struct {
	// Offset is the byte offset of the offending input (the input length
	// when the text ends too early).
	Offset int
	// Msg describes the problem.
	Msg string
}

// Error implements error.
func (e *SyntaxError) Error() string {
	return "cqrsync: invalid JSON: " + e.Msg + " at offset " + strconv.Itoa(e.Offset)
}

// Decode decodes one JSON value into the ordered model: objects become
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
// Decode does not retain data, but the strings it returns share one
// copy of it.
func Decode(data []byte) (any, error) {
	d := decoderPool.Get().(*decoder)
	// One copy of the input backs every string and number that needs no
	// unescaping: they are substrings of src.
	d.data, d.src, d.pos, d.depth = data, string(data), 0, 0
	v, err := d.decode()
	// Popped scratch entries are cleared as they go; an error may leave
	// some behind.
	clear(d.members)
	clear(d.elems)
	d.members, d.elems, d.data, d.src = d.members[:0], d.elems[:0], nil, ""
	if cap(d.members) <= 1024 && cap(d.elems) <= 1024 {
		decoderPool.Put(d)
	}
	return v, err
}

var decoderPool = sync.Pool{New: func() any {
	return &decoder{members: make([]Member, 0, 32), elems: make([]any, 0, 16)}
}}

func (d *decoder) decode() (any, error) {
	d.skipSpace()
	v, err := d.value()
	if err != nil {
		return nil, err
	}
	d.skipSpace()
	if d.pos < len(d.data) {
		return nil, d.errorf("invalid character %s after top-level value", quoteByte(d.data[d.pos]))
	}
	return v, nil
}

// digitValues holds the one-digit numbers, boxed once.
var digitValues = func() (d [10]any) {
	for i := range d {
		d[i] = json.Number(strconv.Itoa(i))
	}
	return d
}()

type decoder struct {
	data    []byte
	src     string // data as a string
	pos     int
	depth   int
	members []Member // scratch stack of the objects being decoded
	elems   []any    // scratch stack of the arrays being decoded
}

func (d *decoder) errorf(format string, args ...any) error {
	return &SyntaxError{Offset: d.pos, Msg: fmt.Sprintf(format, args...)}
}

func (d *decoder) eof() error {
	return &SyntaxError{Offset: len(d.data), Msg: "unexpected end of JSON input"}
}

func (d *decoder) skipSpace() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

func (d *decoder) value() (any, error) {
	if d.pos >= len(d.data) {
		return nil, d.eof()
	}
	switch c := d.data[d.pos]; c {
	case '"':
		return d.string()
	case '{':
		return d.object()
	case '[':
		return d.array()
	case 't':
		return true, d.literal("true")
	case 'f':
		return false, d.literal("false")
	case 'n':
		return nil, d.literal("null")
	default:
		if c == '-' || (c >= '0' && c <= '9') {
			end, ok := scanNumber(d.data, d.pos)
			if !ok {
				d.pos = end
				if end >= len(d.data) {
					return nil, d.eof()
				}
				return nil, d.errorf("invalid character %s in numeric literal", quoteByte(d.data[end]))
			}
			if end == d.pos+1 {
				d.pos = end
				return digitValues[c-'0'], nil
			}
			n := json.Number(d.src[d.pos:end])
			d.pos = end
			return n, nil
		}
		return nil, d.errorf("invalid character %s looking for beginning of value", quoteByte(c))
	}
}

func (d *decoder) literal(lit string) error {
	for i := 0; i < len(lit); i++ {
		if d.pos >= len(d.data) {
			return d.eof()
		}
		if d.data[d.pos] != lit[i] {
			return d.errorf("invalid character %s in literal %s", quoteByte(d.data[d.pos]), lit)
		}
		d.pos++
	}
	return nil
}

// indexThreshold is the object size from which duplicate keys are found
// through a map rather than by a linear scan.
const indexThreshold = 32

func (d *decoder) object() (any, error) {
	d.depth++
	if d.depth > maxDepth {
		return nil, d.errorf("exceeded max depth of %d", maxDepth)
	}
	d.pos++ // '{'
	d.skipSpace()
	if d.pos < len(d.data) && d.data[d.pos] == '}' {
		d.pos++
		d.depth--
		return Object{}, nil
	}
	base := len(d.members)
	var index map[string]int // key -> position in d.members, for big objects
	for {
		if d.pos >= len(d.data) {
			return nil, d.eof()
		}
		if d.data[d.pos] != '"' {
			return nil, d.errorf("invalid character %s looking for beginning of object key string", quoteByte(d.data[d.pos]))
		}
		key, err := d.string()
		if err != nil {
			return nil, err
		}
		d.skipSpace()
		if d.pos >= len(d.data) {
			return nil, d.eof()
		}
		if d.data[d.pos] != ':' {
			return nil, d.errorf("invalid character %s after object key", quoteByte(d.data[d.pos]))
		}
		d.pos++
		d.skipSpace()
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		// A repeated key keeps its first position and takes the new value.
		dup := -1
		if index != nil {
			if i, ok := index[key]; ok {
				dup = i
			}
		} else {
			for i := base; i < len(d.members); i++ {
				if d.members[i].Key == key {
					dup = i
					break
				}
			}
		}
		if dup >= 0 {
			d.members[dup].Value = v
		} else {
			d.members = append(d.members, Member{Key: key, Value: v})
			if index != nil {
				index[key] = len(d.members) - 1
			} else if len(d.members)-base >= indexThreshold {
				index = make(map[string]int, 2*indexThreshold)
				for i := base; i < len(d.members); i++ {
					index[d.members[i].Key] = i
				}
			}
		}
		d.skipSpace()
		if d.pos >= len(d.data) {
			return nil, d.eof()
		}
		switch d.data[d.pos] {
		case ',':
			d.pos++
			d.skipSpace()
		case '}':
			d.pos++
			obj := make(Object, len(d.members)-base)
			copy(obj, d.members[base:])
			clear(d.members[base:])
			d.members = d.members[:base]
			d.depth--
			return obj, nil
		default:
			return nil, d.errorf("invalid character %s after object key:value pair", quoteByte(d.data[d.pos]))
		}
	}
}

func (d *decoder) array() (any, error) {
	d.depth++
	if d.depth > maxDepth {
		return nil, d.errorf("exceeded max depth of %d", maxDepth)
	}
	d.pos++ // '['
	d.skipSpace()
	if d.pos < len(d.data) && d.data[d.pos] == ']' {
		d.pos++
		d.depth--
		return []any{}, nil
	}
	base := len(d.elems)
	for {
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		d.elems = append(d.elems, v)
		d.skipSpace()
		if d.pos >= len(d.data) {
			return nil, d.eof()
		}
		switch d.data[d.pos] {
		case ',':
			d.pos++
			d.skipSpace()
		case ']':
			d.pos++
			arr := make([]any, len(d.elems)-base)
			copy(arr, d.elems[base:])
			clear(d.elems[base:])
			d.elems = d.elems[:base]
			d.depth--
			return arr, nil
		default:
			return nil, d.errorf("invalid character %s after array element", quoteByte(d.data[d.pos]))
		}
	}
}

// string decodes the string literal at d.pos.
func (d *decoder) string() (string, error) {
	start := d.pos + 1
	ascii := true
	for i := start; i < len(d.data); i++ {
		switch c := d.data[i]; {
		case c == '"':
			raw := d.data[start:i]
			d.pos = i + 1
			if ascii || utf8.Valid(raw) {
				return d.src[start:i], nil
			}
			return string(fixUTF8(make([]byte, 0, len(raw)+8), raw)), nil
		case c == '\\':
			return d.stringSlow(start, i)
		case c < 0x20:
			d.pos = i
			return "", d.errorf("invalid character %s in string literal", quoteByte(c))
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return "", d.eof()
}

// stringSlow decodes a string literal that has escapes; start is the first
// byte after the opening quote and i the first backslash.
func (d *decoder) stringSlow(start, i int) (string, error) {
	buf := make([]byte, 0, i-start+16)
	buf = fixUTF8(buf, d.data[start:i])
	data := d.data
	for i < len(data) {
		c := data[i]
		switch {
		case c == '"':
			d.pos = i + 1
			return string(buf), nil
		case c == '\\':
			if i+1 >= len(data) {
				return "", d.eof()
			}
			switch e := data[i+1]; e {
			case '"', '\\', '/':
				buf = append(buf, e)
				i += 2
			case 'b':
				buf = append(buf, '\b')
				i += 2
			case 'f':
				buf = append(buf, '\f')
				i += 2
			case 'n':
				buf = append(buf, '\n')
				i += 2
			case 'r':
				buf = append(buf, '\r')
				i += 2
			case 't':
				buf = append(buf, '\t')
				i += 2
			case 'u':
				r, err := d.hex4(i + 2)
				if err != nil {
					return "", err
				}
				i += 6
				if utf16.IsSurrogate(r) {
					// A valid pair is consumed whole; anything else makes
					// the first half U+FFFD (as encoding/json does).
					r2 := rune(-1)
					if i+6 <= len(data) && data[i] == '\\' && data[i+1] == 'u' {
						r2 = hex4(data[i+2 : i+6])
					}
					if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
						r = dec
						i += 6
					} else {
						r = utf8.RuneError
					}
				}
				buf = utf8.AppendRune(buf, r)
			default:
				d.pos = i + 1
				return "", d.errorf("invalid character %s in string escape code", quoteByte(e))
			}
		case c < 0x20:
			d.pos = i
			return "", d.errorf("invalid character %s in string literal", quoteByte(c))
		case c < utf8.RuneSelf:
			buf = append(buf, c)
			i++
		default:
			r, size := utf8.DecodeRune(data[i:])
			buf = utf8.AppendRune(buf, r)
			i += size
		}
	}
	return "", d.eof()
}

// hex4 reads the four hex digits of a \u escape starting at data[i].
func (d *decoder) hex4(i int) (rune, error) {
	for j := i; j < i+4; j++ {
		if j >= len(d.data) {
			return 0, d.eof()
		}
		if HexVal(d.data[j]) < 0 {
			d.pos = j
			return 0, d.errorf("invalid character %s in \\u hexadecimal character escape", quoteByte(d.data[j]))
		}
	}
	return hex4(d.data[i : i+4]), nil
}

// HexVal returns the value of the hexadecimal digit c (either case), or
// -1 when c is not one.
func HexVal(c byte) rune {
	switch {
	case c >= '0' && c <= '9':
		return rune(c - '0')
	case c >= 'a' && c <= 'f':
		return rune(c - 'a' + 10)
	case c >= 'A' && c <= 'F':
		return rune(c - 'A' + 10)
	}
	return -1
}

// hex4 decodes four hex digits, or returns -1.
func hex4(b []byte) rune {
	var r rune
	for _, c := range b {
		v := HexVal(c)
		if v < 0 {
			return -1
		}
		r = r<<4 | v
	}
	return r
}

// fixUTF8 appends b to dst with each invalid UTF-8 byte replaced by
// U+FFFD.
func fixUTF8(dst, b []byte) []byte {
	for len(b) > 0 {
		c := b[0]
		if c < utf8.RuneSelf {
			dst = append(dst, c)
			b = b[1:]
			continue
		}
		r, size := utf8.DecodeRune(b)
		dst = utf8.AppendRune(dst, r)
		b = b[size:]
	}
	return dst
}

// quoteByte formats c for an error message.
func quoteByte(c byte) string {
	switch {
	case c == '\'':
		return `'\''`
	case c >= 0x20 && c < 0x7f:
		return "'" + string(rune(c)) + "'"
	default:
		return fmt.Sprintf("0x%02x", c)
	}
}

// Kind names the JSON type of a decoded value, for error messages.
func Kind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case json.Number, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64:
		return "number"
	case Object, *Object, map[string]any:
		return "object"
	case []any, []string, []Object:
		return "array"
	default:
		return fmt.Sprintf("Go type %T", v)
	}
}

// QuoteTrunc quotes s for an error message, cut to a readable length.
func QuoteTrunc(s string) string {
	const max = 64
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return strconv.Quote(s[:cut]) + "..."
	}
	return strconv.Quote(s)
}

// TopLevelValue finds the value of key in the JSON object data (its last
// occurrence, as decoding keeps the last value) and returns its byte span.
func TopLevelValue(data []byte, key string) (start, end int, ok bool) {
	d := &decoder{data: data, src: string(data)}
	d.skipSpace()
	if d.pos >= len(data) || data[d.pos] != '{' {
		return 0, 0, false
	}
	d.pos++
	d.depth++
	d.skipSpace()
	if d.pos < len(data) && data[d.pos] == '}' {
		return 0, 0, false
	}
	for d.pos < len(data) && data[d.pos] == '"' {
		k, err := d.string()
		if err != nil {
			return 0, 0, false
		}
		d.skipSpace()
		if d.pos >= len(data) || data[d.pos] != ':' {
			return 0, 0, false
		}
		d.pos++
		d.skipSpace()
		s := d.pos
		if _, err := d.value(); err != nil {
			return 0, 0, false
		}
		if k == key {
			start, end, ok = s, d.pos, true
		}
		d.skipSpace()
		if d.pos >= len(data) {
			return 0, 0, false
		}
		switch data[d.pos] {
		case ',':
			d.pos++
			d.skipSpace()
		case '}':
			return start, end, ok
		default:
			return 0, 0, false
		}
	}
	return 0, 0, false
}
