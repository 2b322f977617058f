package ujson

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestAppendJSONFloat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   any
		want string
	}{
		{"tenth", 0.1, "0.1"},
		{"small exponent", 1e-7, "1e-7"},
		{"large exponent", 1.2345678901234567e+19, "1.2345678901234567e+19"},
		{"1e16 switches to exponent", 1e16, "1e+16"},
		{"1e15 stays decimal", 1e15, "1000000000000000.0"},
		{"long decimal", 123456789012345.6, "123456789012345.6"},
		{"largest decimal", 9999999999999998.0, "9999999999999998.0"},
		{"negative 1e-4 stays decimal", -0.0001, "-0.0001"},
		{"1e-5 switches to exponent", 0.00001, "1e-5"},
		{"1.5e-5", 0.000015, "1.5e-5"},
		{"whole number", 10.0, "10.0"},
		{"zero", 0.0, "0.0"},
		{"negative zero", math.Copysign(0, -1), "-0.0"},
		{"two and a half", 2.5, "2.5"},
		{"decimal", 1234.56, "1234.56"},
		{"negative whole", -7.0, "-7.0"},
		{"max float", math.MaxFloat64, "1.7976931348623157e+308"},
		{"smallest subnormal", 5e-324, "5e-324"},
		{"large exponent 3 digits", 1e100, "1e+100"},
		{"third", 1.0 / 3, "0.3333333333333333"},
		{"float32 shortest", float32(0.1), "0.1"},
		{"float32 whole", float32(3), "3.0"},
		{"float32 exponent", float32(1e20), "1e+20"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Append(nil, tt.in)
			if err != nil {
				t.Fatalf("Append(%v): %v", tt.in, err)
			}
			if string(got) != tt.want {
				t.Errorf("Append(%v) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
}

func TestAppendJSONString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"README example", "Grüße \"quoted\" \\ / <tag> & \n\t end", `"Gr\u00fc\u00dfe \"quoted\" \\ \/ <tag> & \n\t end"`},
		{"empty", "", `""`},
		{"plain", "case:basic_create_full", `"case:basic_create_full"`},
		{"emoji as surrogate pair", "a😀b", `"a\ud83d\ude00b"`},
		{"controls", "\x00\x01\b\f\r\x1f\x7f", `"\u0000\u0001\b\f\r\u001f` + "\x7f" + `"`},
		{"e acute", "é", `"\u00e9"`},
		{"euro and line separator", "€\u2028", `"\u20ac\u2028"`},
		{"invalid UTF-8", "a\xffb", `"a\ufffdb"`},
		{"truncated UTF-8", "\xe2\x82", `"\ufffd\ufffd"`},
		{"html kept", "<a href=\"x\">&amp;</a>", `"<a href=\"x\">&amp;<\/a>"`},
		{"BMP max", "\uffff", `"\uffff"`},
		{"max rune", "\U0010ffff", `"\udbff\udfff"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Append(nil, tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("Append(%q) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
}

func TestAppendJSONValues(t *testing.T) {
	t.Parallel()
	var nilObj *Object
	obj := Object{{"b", true}, {"a", json.Number("1")}}
	tests := []struct {
		name string
		in   any
		want string
	}{
		{"nil", nil, "null"},
		{"true", true, "true"},
		{"false", false, "false"},
		{"int", 42, "42"},
		{"int64 min", int64(math.MinInt64), "-9223372036854775808"},
		{"int8", int8(-7), "-7"},
		{"int16", int16(300), "300"},
		{"int32", int32(2147483647), "2147483647"},
		{"uint64 max", uint64(math.MaxUint64), "18446744073709551615"},
		{"uint8", uint8(255), "255"},
		{"uint", uint(1), "1"},
		{"uint16", uint16(2), "2"},
		{"uint32", uint32(3), "3"},
		{"number verbatim", json.Number("1.50E+3"), "1.50E+3"},
		{"nil object is null", Object(nil), "null"},
		{"empty object", Object{}, "{}"},
		{"object keeps order", obj, `{"b":true,"a":1}`},
		{"object pointer", &obj, `{"b":true,"a":1}`},
		{"nil object pointer", nilObj, "null"},
		{"nil slice", []any(nil), "null"},
		{"empty slice", []any{}, "[]"},
		{"nested", []any{1, "x", []any{nil}, Object{{"k", 2.5}}}, `[1,"x",[null],{"k":2.5}]`},
		{"strings", []string{"a", "/"}, `["a","\/"]`},
		{"objects", []Object{{}, nil}, `[{},null]`},
		{"map sorted", map[string]any{"b": 1, "a": "x", "c": nil}, `{"a":"x","b":1,"c":null}`},
		{"raw message recoded", json.RawMessage(`{"b": true, "k": [1, 2.5, {"n": null}], "u": "é/"}`), `{"b":true,"k":[1,2.5,{"n":null}],"u":"\u00e9\/"}`},
		{"empty raw message", json.RawMessage(nil), "null"},
		{"key escaping", Object{{"ü/", 1}}, `{"\u00fc\/":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Append([]byte("prefix:"), tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if want := "prefix:" + tt.want; string(got) != want {
				t.Errorf("Append(%#v) = %s, want %s", tt.in, got, want)
			}
		})
	}
}

func TestAppendJSONErrors(t *testing.T) {
	t.Parallel()
	deep := []any{}
	for range maxDepth + 1 {
		deep = []any{deep}
	}
	tests := []struct {
		name    string
		in      any
		wantErr string
	}{
		{"NaN", math.NaN(), "NaN"},
		{"+Inf", math.Inf(1), "+Inf"},
		{"-Inf float32", float32(math.Inf(-1)), "-Inf"},
		{"invalid number", json.Number("01"), `invalid json.Number "01"`},
		{"empty number", json.Number(""), "invalid json.Number"},
		{"unsupported type", time.Time{}, "unsupported Go type time.Time"},
		{"unsupported nested", Object{{"a", []any{struct{}{}}}}, "unsupported Go type struct {}"},
		{"byte slice unsupported", []byte("x"), "unsupported Go type []uint8"},
		{"invalid raw message", json.RawMessage(`{"a":}`), "invalid json.RawMessage"},
		{"too deep", deep, "nesting deeper than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Append(nil, tt.in)
			if err == nil {
				t.Fatalf("Append(%T) succeeded, want error containing %q", tt.in, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "cqrsync: ") {
				t.Errorf("error %q, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestDecodeJSON(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want any
	}{
		{"order kept", `{"z":1,"a":2,"m":3}`, Object{{"z", json.Number("1")}, {"a", json.Number("2")}, {"m", json.Number("3")}}},
		{"numbers exact", `[1.0,-0,1e400,0.1,12345678901234567890,1E-7]`, []any{json.Number("1.0"), json.Number("-0"), json.Number("1e400"), json.Number("0.1"), json.Number("12345678901234567890"), json.Number("1E-7")}},
		{"empty object non-nil", `{}`, Object{}},
		{"empty array non-nil", ` [ ] `, []any{}},
		{"literals", `[true,false,null]`, []any{true, false, nil}},
		{"whitespace", " \t\r\n{ \"a\" : [ 1 , 2 ] }\n", Object{{"a", []any{json.Number("1"), json.Number("2")}}}},
		{"repeated key keeps first position, last value", `{"a":1,"b":2,"a":3}`, Object{{"a", json.Number("3")}, {"b", json.Number("2")}}},
		{"escapes", `"\"\\\/\b\f\n\r\t\u00e9\u20AC"`, "\"\\/\b\f\n\r\té€"},
		{"surrogate pair", `"\ud83d\ude00"`, "😀"},
		{"lone high surrogate", `"\ud83dx"`, "\ufffdx"},
		{"lone low surrogate", `"\ude00"`, "\ufffd"},
		{"high surrogate then non-surrogate escape", `"\ud83d\u0041"`, "\ufffdA"},
		{"two high surrogates then low", `"\ud83d\ud83d\ude00"`, "\ufffd😀"},
		{"raw UTF-8", `"Grüße"`, "Grüße"},
		{"invalid UTF-8 replaced", "\"a\xffb\"", "a\ufffdb"},
		{"invalid UTF-8 with escape", "\"\xff\\n\"", "\ufffd\n"},
		{"nested", `{"k":[1,2.5,{"n":null}],"u":"\u00e9","b":true}`, Object{
			{"k", []any{json.Number("1"), json.Number("2.5"), Object{{"n", nil}}}},
			{"u", "é"},
			{"b", true},
		}},
		{"top-level string", `"x"`, "x"},
		{"top-level number", `-12.5e+3`, json.Number("-12.5e+3")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Decode([]byte(tt.in))
			if err != nil {
				t.Fatalf("Decode(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Decode(%q) = %#v, want %#v", tt.in, got, tt.want)
			}
		})
	}
}

func TestDecodeJSONLargeObject(t *testing.T) {
	t.Parallel()
	// Past indexThreshold members, duplicates are found through a map.
	var b strings.Builder
	b.WriteString("{")
	const n = 100
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`"k` + string(rune('A'+i%26)) + string(rune('a'+i/26)) + `":` + string(rune('0'+i%10)))
	}
	b.WriteString(`,"kAa":"last","kZa":"z"}`)
	v, err := Decode([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	o := v.(Object)
	if len(o) != n {
		t.Fatalf("len = %d, want %d", len(o), n)
	}
	if o[0].Key != "kAa" || o[0].Value != "last" {
		t.Errorf("first member = %v, want kAa=last", o[0])
	}
	if got, _ := o.Get("kZa"); got != "z" {
		t.Errorf("kZa = %v, want z", got)
	}
}

func TestDecodeJSONErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		in         string
		wantOffset int
		wantMsg    string
	}{
		{"empty", ``, 0, "unexpected end of JSON input"},
		{"spaces only", `   `, 3, "unexpected end of JSON input"},
		{"not json", `this is not json`, 1, "invalid character 'h' in literal true"},
		{"trailing garbage", `{} x`, 3, "after top-level value"},
		{"two values", `1 2`, 2, "after top-level value"},
		{"leading zero", `01`, 1, "after top-level value"},
		{"bare minus", `-`, 1, "unexpected end"},
		{"dot without digits", `1.`, 2, "unexpected end"},
		{"exponent without digits", `1e+x`, 3, "in numeric literal"},
		{"leading dot", `.5`, 0, "looking for beginning of value"},
		{"plus sign", `+1`, 0, "looking for beginning of value"},
		{"single quotes", `{'a':1}`, 1, "looking for beginning of object key string"},
		{"trailing comma in object", `{"a":1,}`, 7, "looking for beginning of object key string"},
		{"trailing comma in array", `[1,]`, 3, "looking for beginning of value"},
		{"missing colon", `{"a" 1}`, 5, "after object key"},
		{"missing comma", `[1 2]`, 3, "after array element"},
		{"unterminated string", `"abc`, 4, "unexpected end"},
		{"unterminated object", `{"a":1`, 6, "unexpected end"},
		{"control char in string", "\"a\nb\"", 2, "in string literal"},
		{"bad escape", `"\x"`, 2, "in string escape code"},
		{"bad unicode escape", `"\u12G4"`, 5, `\u hexadecimal`},
		{"short unicode escape", `"\u12`, 5, "unexpected end"},
		{"NaN", `NaN`, 0, "looking for beginning of value"},
		{"Infinity", `[Infinity]`, 1, "looking for beginning of value"},
		{"truncated literal", `tru`, 3, "unexpected end"},
		{"BOM", "\ufeff{}", 0, "looking for beginning of value"},
		{"comment", `{} // x`, 3, "after top-level value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if json.Valid([]byte(tt.in)) {
				t.Fatalf("test input %q is valid for encoding/json", tt.in)
			}
			v, err := Decode([]byte(tt.in))
			if err == nil {
				t.Fatalf("Decode(%q) = %#v, want error", tt.in, v)
			}
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("error %T %v is not a *SyntaxError", err, err)
			}
			if se.Offset != tt.wantOffset || !strings.Contains(se.Msg, tt.wantMsg) {
				t.Errorf("Decode(%q) error = %q (offset %d), want offset %d and %q", tt.in, err, se.Offset, tt.wantOffset, tt.wantMsg)
			}
			if !strings.HasPrefix(err.Error(), "cqrsync: invalid JSON: ") {
				t.Errorf("error %q lacks the cqrsync prefix", err)
			}
		})
	}
}

func TestDecodeJSONDepth(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		depth  int
		open   string
		close  string
		wantOK bool
	}{
		{"arrays at the limit", maxDepth, "[", "]", true},
		{"arrays past the limit", maxDepth + 1, "[", "]", false},
		{"objects at the limit", maxDepth, `{"a":`, "}", true},
		{"objects past the limit", maxDepth + 1, `{"a":`, "}", false},
		{"far past the limit", 1_000_000, "[", "]", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := []byte(strings.Repeat(tt.open, tt.depth) + "1" + strings.Repeat(tt.close, tt.depth))
			_, err := Decode(in)
			if (err == nil) != tt.wantOK {
				t.Errorf("depth %d: err = %v, want ok=%v", tt.depth, err, tt.wantOK)
			}
			if tt.depth <= maxDepth+1 && json.Valid(in) != tt.wantOK {
				t.Errorf("encoding/json.Valid disagrees at depth %d", tt.depth)
			}
		})
	}
}

func TestObjectMethods(t *testing.T) {
	t.Parallel()
	var o Object
	if _, ok := o.Get("a"); ok {
		t.Error("Get on nil Object found a key")
	}
	if o.Keys() != nil {
		t.Error("Keys of nil Object is not nil")
	}
	o.Delete("a") // no-op on nil
	if o != nil {
		t.Error("Delete made a nil Object non-nil")
	}
	o.Set("a", 1)
	o.Set("b", 2)
	o.Set("c", 3)
	o.Set("a", 10) // in place
	if got, want := o.Keys(), []string{"a", "b", "c"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Keys = %v, want %v", got, want)
	}
	if v, ok := o.Get("a"); !ok || v != 10 {
		t.Errorf("Get(a) = %v, %v; want 10, true", v, ok)
	}
	o.Delete("b")
	if got, want := o.Keys(), []string{"a", "c"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Keys after Delete = %v, want %v", got, want)
	}
	o.Delete("a")
	o.Delete("c")
	if o == nil || len(o) != 0 {
		t.Errorf("Object after deleting everything = %#v, want non-nil empty", o)
	}
	if got, _ := Append(nil, o); string(got) != "{}" {
		t.Errorf("emptied Object encodes as %s, want {}", got)
	}
}

func TestObjectClone(t *testing.T) {
	t.Parallel()
	inner := Object{{"n", json.Number("1")}}
	list := []any{"x", Object{{"deep", true}}}
	m := map[string]any{"k": []any{1}}
	orig := Object{{"inner", inner}, {"list", list}, {"ptr", &inner}, {"map", m}, {"s", "str"}}
	c := orig.Clone()
	if !reflect.DeepEqual(c, orig) {
		t.Fatalf("Clone = %#v, want %#v", c, orig)
	}
	inner[0].Value = "changed"
	list[1].(Object)[0].Value = false
	m["k"].([]any)[0] = 2
	if got, _ := c.Get("inner"); got.(Object)[0].Value != json.Number("1") {
		t.Error("Clone shares a nested Object")
	}
	if got, _ := c.Get("ptr"); (*got.(*Object))[0].Value != json.Number("1") {
		t.Error("Clone shares a nested *Object")
	}
	if got, _ := c.Get("list"); got.([]any)[1].(Object)[0].Value != true {
		t.Error("Clone shares a nested []any")
	}
	if got, _ := c.Get("map"); got.(map[string]any)["k"].([]any)[0] != 1 {
		t.Error("Clone shares a nested map")
	}
	if Object(nil).Clone() != nil {
		t.Error("Clone of nil is not nil")
	}
	if e := (Object{}).Clone(); e == nil {
		t.Error("Clone of an empty Object is nil")
	}
}

func TestObjectEncodingJSON(t *testing.T) {
	t.Parallel()
	type wrapper struct {
		O Object  `json:"o"`
		N Object  `json:"n"`
		P *Object `json:"p,omitempty"`
	}
	w := wrapper{O: Object{{"z", 1}, {"a", "é"}}}
	b, err := json.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"o":{"z":1,"a":"\u00e9"},"n":null}`; string(b) != want {
		t.Errorf("json.Marshal = %s, want %s", b, want)
	}
	var back wrapper
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	want := wrapper{O: Object{{"z", json.Number("1")}, {"a", "é"}}}
	if !reflect.DeepEqual(back, want) {
		t.Errorf("json.Unmarshal = %#v, want %#v", back, want)
	}
	var o Object
	if err := json.Unmarshal([]byte(`[1]`), &o); err == nil {
		t.Error("unmarshalling an array into an Object succeeded")
	}
}

// toStdJSON converts the ordered model into what encoding/json decodes with
// UseNumber, for differential checks.
func toStdJSON(v any) any {
	switch v := v.(type) {
	case Object:
		m := make(map[string]any, len(v))
		for _, e := range v {
			m[e.Key] = toStdJSON(e.Value)
		}
		return m
	case []any:
		s := make([]any, len(v))
		for i, e := range v {
			s[i] = toStdJSON(e)
		}
		return s
	default:
		return v
	}
}

func FuzzDecodeJSON(f *testing.F) {
	seeds := []string{
		`{"signal_type":"SAVE","cqrs_id":"djpeer_basic","instance_data":{"id":1,"nullable_char":"Gr\u00fc\u00dfe \"quoted\" \\ \/ <tag> & \n\t end","json_field":{"k":[1,2.5,{"n":null}],"u":"\u00e9","b":true}},"previous_data":null,"instance_pk":1,"correlation_id":null,"retries":0,"expires":"2026-11-24T15:01:46+00:00","meta":{}}`,
		`[1e-7,-0.0001,1.2345678901234567e+19,0,-0,1E400]`,
		`"\ud83d\ude00\ud83d\u0041\udc00"`,
		"\"\xff\xfe\"",
		`{"a":1,"a":2}`,
		` [ ] `,
		`{"a" 1}`,
		`01`,
		`this is not json`,
		`[[[[[[[[[[]]]]]]]]]]`,
		`{"\u0000":"\u001f"}`,
		``,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := Decode(data)
		if valid := json.Valid(data); valid != (err == nil) {
			t.Fatalf("Decode(%q) err = %v, but encoding/json.Valid = %v", data, err, valid)
		}
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) || se.Offset < 0 || se.Offset > len(data) {
				t.Fatalf("Decode(%q): bad error %#v", data, err)
			}
			return
		}
		// Same value as encoding/json.
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var std any
		if err := dec.Decode(&std); err != nil {
			t.Fatalf("encoding/json cannot decode %q: %v", data, err)
		}
		if got := toStdJSON(v); !reflect.DeepEqual(got, std) {
			t.Fatalf("Decode(%q) = %#v, encoding/json = %#v", data, got, std)
		}
		// Encode, decode again: same value; the encoding is ASCII.
		enc, err := Append(nil, v)
		if err != nil {
			t.Fatalf("Append(Decode(%q)): %v", data, err)
		}
		for _, c := range enc {
			if c >= 0x80 || c < 0x20 {
				t.Fatalf("Append wrote byte %#x: %q", c, enc)
			}
		}
		v2, err := Decode(enc)
		if err != nil {
			t.Fatalf("Decode(%q) of our own encoding: %v", enc, err)
		}
		if !reflect.DeepEqual(v, v2) {
			t.Fatalf("round trip of %q via %q: %#v != %#v", data, enc, v2, v)
		}
		enc2, err := Append(nil, v2)
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not stable: %q then %q (%v)", enc, enc2, err)
		}
	})
}
