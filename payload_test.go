package cqrsync

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
)

// basicCreateFullBody is the exact body of vectors/basic_create_full.json
// (TestVectorBodies checks that it still is).
const basicCreateFullBody = `{"signal_type":"SAVE","cqrs_id":"djpeer_basic","instance_data":{"id":1,"cqrs_revision":0,"cqrs_updated":"2026-11-23 15:01:46.452153+00:00","int_field":42,"char_field":"case:basic_create_full","date_field":"2024-02-29","datetime_field":"2024-02-29 13:45:30.123456+00:00","bool_field":true,"nullable_int":-7,"nullable_char":"Gr\u00fc\u00dfe \"quoted\" \\ \/ <tag> & \n\t end","uuid_field":"12345678-1234-5678-9abc-def012345678","decimal_field":1234.56,"float_field":0.1,"json_field":{"k":[1,2.5,{"n":null}],"u":"\u00e9","b":true}},"previous_data":null,"instance_pk":1,"correlation_id":null,"retries":0,"expires":"2026-11-24T15:01:46+00:00","meta":{}}`

// vectorsDir returns the django-cqrs interop vectors folder and fails the
// test when it is missing: these tests must never pass vacuously.
func vectorsDir(tb testing.TB) string { return cqrsynctesting.VectorsDir(tb) }

// vectorText is one piece of wire text found in a vector file.
type vectorText struct {
	where string // file and JSON path, for messages
	text  string
}

// walkVectorStrings calls fn for every string under a key in a decoded
// vector file, with the JSON path of the value.
func walkVectorStrings(v any, path string, fn func(path, key, s string)) {
	switch v := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if s, ok := v[k].(string); ok {
				fn(path+"."+k, k, s)
				continue
			}
			walkVectorStrings(v[k], path+"."+k, fn)
		}
	case []any:
		for i, e := range v {
			walkVectorStrings(e, fmt.Sprintf("%s[%d]", path, i), fn)
		}
	}
}

// collectVectors finds every message body in the vectors: the body and
// published_body strings anywhere in every JSON file, the lines of the
// commands' stdout that are bodies (cqrs_dead_letters dump and retry print
// them), and every line of cmd_cqrs_dead_letters_dump.txt. It also returns
// every other line of JSON text (bulk dumps, diff streams).
func collectVectors(tb testing.TB) (bodies, jsonLines []vectorText) {
	tb.Helper()
	dir := vectorsDir(tb)
	files, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	for _, f := range files {
		name := f.Name()
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			tb.Fatal(err)
		}
		switch {
		case name == "cmd_cqrs_dead_letters_dump.txt":
			for i, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
				bodies = append(bodies, vectorText{fmt.Sprintf("%s line %d", name, i+1), line})
			}
		case strings.HasSuffix(name, ".json"):
			var doc any
			if err := json.Unmarshal(data, &doc); err != nil {
				tb.Fatalf("%s: %v", name, err)
			}
			walkVectorStrings(doc, name, func(path, key, s string) {
				switch key {
				case "body", "published_body":
					bodies = append(bodies, vectorText{path, s})
				case "stdout":
					for i, line := range strings.Split(s, "\n") {
						where := fmt.Sprintf("%s line %d", path, i+1)
						switch {
						case strings.HasPrefix(line, `{"signal_type":`):
							bodies = append(bodies, vectorText{where, line})
						case json.Valid([]byte(line)) && (strings.HasPrefix(line, "{") || strings.HasPrefix(line, "[")):
							jsonLines = append(jsonLines, vectorText{where, line})
						}
					}
				}
			})
		case strings.HasSuffix(name, ".dump") || strings.HasSuffix(name, ".txt"):
			for i, line := range strings.Split(string(data), "\n") {
				if json.Valid([]byte(line)) && (strings.HasPrefix(line, "{") || strings.HasPrefix(line, "[")) {
					jsonLines = append(jsonLines, vectorText{fmt.Sprintf("%s line %d", name, i+1), line})
				}
			}
		}
	}
	return bodies, jsonLines
}

// TestVectorBodies decodes every message body of the interop vectors and
// encodes it again: the result must be the exact bytes django-cqrs (ujson)
// wrote.
func TestVectorBodies(t *testing.T) {
	t.Parallel()
	bodies, _ := collectVectors(t)
	// 76 bodies in the JSON files, 2 in the cqrs_dead_letters stdout and
	// 1 in the dump file when this test was written.
	const minBodies = 75
	if len(bodies) < minBodies {
		t.Fatalf("found %d message bodies in the vectors, want at least %d", len(bodies), minBodies)
	}
	now := time.Date(2026, 11, 23, 15, 0, 0, 123456789, time.UTC)
	var exact, notJSON, missingKey, missingExpires int
	sawFullBody := false
	for _, b := range bodies {
		body := []byte(b.text)
		sawFullBody = sawFullBody || b.text == basicCreateFullBody
		// What django-cqrs would make of it, judged with encoding/json.
		var std map[string]any
		stdErr := json.Unmarshal(body, &std)
		var missing string
		for _, k := range []string{"signal_type", "cqrs_id", "instance_data", "instance_pk"} {
			if _, ok := std[k]; !ok && missing == "" {
				missing = k
			}
		}
		_, hasExpires := std["expires"]

		p, err := DecodePayload(body, now)
		switch {
		case stdErr != nil:
			// "this is not json": rejected, saying so, with the offset.
			notJSON++
			var pe *PayloadError
			if !errors.As(err, &pe) || !errors.Is(err, ErrMalformedPayload) || pe.Field != "" ||
				!strings.Contains(err.Error(), "body is not JSON") || !strings.Contains(err.Error(), "at offset") {
				t.Errorf("%s: %q: err = %v, want a not-JSON PayloadError", b.where, b.text, err)
			}
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Errorf("%s: error does not wrap a *SyntaxError: %v", b.where, err)
			}
		case missing != "":
			// A required key is missing: rejected, naming the key.
			missingKey++
			var pe *PayloadError
			want := fmt.Sprintf("cqrsync: malformed payload: key %q is missing", missing)
			if !errors.As(err, &pe) || pe.Field != missing || err.Error() != want || !errors.Is(err, ErrMalformedPayload) {
				t.Errorf("%s: err = %v, want %q", b.where, err, want)
			}
		case err != nil:
			t.Errorf("%s: DecodePayload: %v\nbody: %s", b.where, err, body)
		case !hasExpires:
			// Without expires, django-cqrs fills in now + TTL; so do we, and
			// the re-encoding then carries that expires: it cannot be
			// byte-identical, so compare as JSON values with it taken out.
			missingExpires++
			if want := now.Add(DefaultMessageTTL); !p.Expires.Equal(want) {
				t.Errorf("%s: Expires = %v, want now + TTL = %v", b.where, p.Expires, want)
			}
			enc, err := p.AppendJSON(nil)
			if err != nil {
				t.Fatalf("%s: AppendJSON: %v", b.where, err)
			}
			got, _ := DecodeJSON(enc)
			gotObj := got.(Object)
			if exp, _ := gotObj.Get("expires"); exp != "2026-11-24T15:00:00+00:00" {
				t.Errorf("%s: encoded expires = %v, want 2026-11-24T15:00:00+00:00", b.where, exp)
			}
			gotObj.Delete("expires")
			orig, _ := DecodeJSON(body)
			if !reflect.DeepEqual(gotObj, orig) {
				t.Errorf("%s: re-encoded body differs beyond expires:\n got %s\nwant %s", b.where, enc, body)
			}
		default:
			exact++
			enc, err := p.AppendJSON(nil)
			if err != nil {
				t.Fatalf("%s: AppendJSON: %v", b.where, err)
			}
			if !bytes.Equal(enc, body) {
				t.Errorf("%s: re-encoded body differs:\n got %s\nwant %s", b.where, enc, body)
			}
			if _, err := p.Revision(); err != nil {
				t.Errorf("%s: Revision: %v", b.where, err)
			}
			if _, err := p.Updated(); err != nil {
				t.Errorf("%s: Updated: %v", b.where, err)
			}
		}
	}
	t.Logf("%d bodies: %d byte-identical, %d not JSON, %d missing a required key, %d without expires",
		len(bodies), exact, notJSON, missingKey, missingExpires)
	if notJSON == 0 || missingKey == 0 || missingExpires == 0 || exact < minBodies-3 {
		t.Errorf("the vectors no longer exercise every case (%d exact, %d not JSON, %d missing key, %d missing expires)",
			exact, notJSON, missingKey, missingExpires)
	}
	if !sawFullBody {
		t.Error("basicCreateFullBody no longer matches vectors/basic_create_full.json")
	}
}

// TestVectorJSONLines re-encodes every other line of JSON text in the
// vectors (bulk dumps, diff streams): ujson wrote them too.
func TestVectorJSONLines(t *testing.T) {
	t.Parallel()
	_, lines := collectVectors(t)
	if len(lines) < 20 {
		t.Fatalf("found %d JSON lines in the vectors, want at least 20", len(lines))
	}
	for _, l := range lines {
		v, err := DecodeJSON([]byte(l.text))
		if err != nil {
			t.Errorf("%s: DecodeJSON: %v", l.where, err)
			continue
		}
		enc, err := AppendJSON(nil, v)
		if err != nil {
			t.Errorf("%s: AppendJSON: %v", l.where, err)
			continue
		}
		if string(enc) != l.text {
			t.Errorf("%s: re-encoded line differs:\n got %s\nwant %s", l.where, enc, l.text)
		}
	}
}

func TestDecodePayload(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	// body builds a body from the required keys plus extra members.
	body := func(extra string) string {
		return `{"signal_type":"SAVE","cqrs_id":"m","instance_data":{"id":1},"instance_pk":1` + extra + `}`
	}
	base := Payload{
		SignalType:   SignalSave,
		CQRSID:       "m",
		InstanceData: Object{{Key: "id", Value: json.Number("1")}},
		InstancePK:   json.Number("1"),
		Expires:      now.Add(DefaultMessageTTL),
	}
	with := func(f func(p *Payload)) Payload {
		p := base
		f(&p)
		return p
	}
	tests := []struct {
		name string
		body string
		want Payload
	}{
		{"minimal", body(""), base},
		{"all nulls", body(`,"previous_data":null,"correlation_id":null,"retries":null,"expires":null,"meta":null`), with(func(p *Payload) { p.Expires = time.Time{} })},
		{"unknown signal kept", `{"signal_type":"UPSERT","cqrs_id":"m","instance_data":{"id":1},"instance_pk":1}`, with(func(p *Payload) { p.SignalType = "UPSERT" })},
		{"null instance_data", `{"signal_type":"SAVE","cqrs_id":"m","instance_data":null,"instance_pk":1}`, with(func(p *Payload) { p.InstanceData = nil })},
		{"string pk", `{"signal_type":"SAVE","cqrs_id":"m","instance_data":{"id":1},"instance_pk":"abc"}`, with(func(p *Payload) { p.InstancePK = "abc" })},
		{"null pk", `{"signal_type":"SAVE","cqrs_id":"m","instance_data":{"id":1},"instance_pk":null}`, with(func(p *Payload) { p.InstancePK = nil })},
		{"retries", body(`,"retries":3`), with(func(p *Payload) { p.Retries = 3 })},
		{"correlation string", body(`,"correlation_id":"c-1"`), with(func(p *Payload) { p.CorrelationID = "c-1" })},
		{"correlation number", body(`,"correlation_id":42`), with(func(p *Payload) { p.CorrelationID = "42" })},
		{"meta and previous", body(`,"previous_data":{},"meta":{"a":[1]}`), with(func(p *Payload) {
			p.PreviousData = Object{}
			p.Meta = Object{{Key: "a", Value: []any{json.Number("1")}}}
		})},
		{"expires canonical", body(`,"expires":"2026-11-24T15:01:46+00:00"`), with(func(p *Payload) { p.Expires = time.Date(2026, 11, 24, 15, 1, 46, 0, time.UTC) })},
		{"expires space, fraction, Z", body(`,"expires":"2026-11-24 15:01:46.5Z"`), with(func(p *Payload) { p.Expires = time.Date(2026, 11, 24, 15, 1, 46, 500000000, time.UTC) })},
		{"expires other offset", body(`,"expires":"2026-11-24T20:31:46+05:30"`), with(func(p *Payload) { p.Expires = time.Date(2026, 11, 24, 15, 1, 46, 0, time.UTC) })},
		{"expires compact offset", body(`,"expires":"2026-11-24T10:01:46-0500"`), with(func(p *Payload) { p.Expires = time.Date(2026, 11, 24, 15, 1, 46, 0, time.UTC) })},
		{"expires naive is UTC", body(`,"expires":"2026-11-24T15:01:46"`), with(func(p *Payload) { p.Expires = time.Date(2026, 11, 24, 15, 1, 46, 0, time.UTC) })},
		{"unknown keys ignored", body(`,"extra":{"x":1}`), base},
		{"repeated key: last wins", `{"signal_type":"SAVE","cqrs_id":"x","cqrs_id":"m","instance_data":{"id":1},"instance_pk":1}`, base},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := DecodePayload([]byte(tt.body), now)
			if err != nil {
				t.Fatalf("DecodePayload(%s): %v", tt.body, err)
			}
			if !p.Expires.Equal(tt.want.Expires) || p.Expires.Location() != time.UTC {
				t.Errorf("Expires = %v, want %v in UTC", p.Expires, tt.want.Expires)
			}
			got, want := *p, tt.want
			got.Expires, want.Expires = time.Time{}, time.Time{}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("DecodePayload(%s) =\n%#v\nwant\n%#v", tt.body, got, want)
			}
		})
	}
}

func TestDecodePayloadZeroNow(t *testing.T) {
	t.Parallel()
	before := time.Now()
	p, err := DecodePayload([]byte(`{"signal_type":"SAVE","cqrs_id":"m","instance_data":{},"instance_pk":1}`), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Expires.Before(before.Add(DefaultMessageTTL)) || p.Expires.After(time.Now().Add(DefaultMessageTTL)) {
		t.Errorf("Expires = %v, want time.Now() + TTL", p.Expires)
	}
}

func TestDecodePayloadErrors(t *testing.T) {
	t.Parallel()
	const req = `"signal_type":"SAVE","cqrs_id":"m","instance_data":{"id":1},"instance_pk":1`
	tests := []struct {
		name    string
		body    string
		field   string
		wantErr string
	}{
		{"not JSON", `this is not json`, "", `cqrsync: malformed payload: body is not JSON: invalid character 'h' in literal true at offset 1`},
		{"truncated", `{"signal_type":"SAVE"`, "", `cqrsync: malformed payload: body is not JSON: unexpected end of JSON input at offset 21`},
		{"empty", ``, "", `body is not JSON`},
		{"array", `[1]`, "", `cqrsync: malformed payload: body is not a JSON object (got array)`},
		{"string", `"x"`, "", `body is not a JSON object (got string)`},
		{"null", `null`, "", `body is not a JSON object (got null)`},
		{"missing instance_pk", `{"signal_type":"SAVE","cqrs_id":"m","instance_data":{}}`, "instance_pk", `cqrsync: malformed payload: key "instance_pk" is missing`},
		{"missing signal_type", `{"cqrs_id":"m","instance_data":{},"instance_pk":1}`, "signal_type", `key "signal_type" is missing`},
		{"missing cqrs_id", `{"signal_type":"SAVE","instance_data":{},"instance_pk":1}`, "cqrs_id", `key "cqrs_id" is missing`},
		{"missing instance_data", `{"signal_type":"SAVE","cqrs_id":"m","instance_pk":1}`, "instance_data", `key "instance_data" is missing`},
		{"signal_type not a string", `{"signal_type":1,"cqrs_id":"m","instance_data":{},"instance_pk":1}`, "signal_type", `key "signal_type" must be a string, got number`},
		{"cqrs_id null", `{"signal_type":"SAVE","cqrs_id":null,"instance_data":{},"instance_pk":1}`, "cqrs_id", `key "cqrs_id" must be a string, got null`},
		{"cqrs_id empty", `{"signal_type":"SAVE","cqrs_id":"","instance_data":{},"instance_pk":1}`, "cqrs_id", `key "cqrs_id" is empty`},
		{"instance_data a list", `{"signal_type":"SAVE","cqrs_id":"m","instance_data":[],"instance_pk":1}`, "instance_data", `key "instance_data" must be an object or null, got array`},
		{"previous_data a string", `{` + req + `,"previous_data":"x"}`, "previous_data", `must be an object or null, got string`},
		{"meta a number", `{` + req + `,"meta":1}`, "meta", `key "meta" must be an object or null, got number`},
		{"retries negative", `{` + req + `,"retries":-1}`, "retries", `key "retries" must be an integer >= 0, got -1`},
		{"retries fractional", `{` + req + `,"retries":1.5}`, "retries", `must be an integer >= 0, got 1.5`},
		{"retries a string", `{` + req + `,"retries":"1"}`, "retries", `must be an integer >= 0, got string`},
		{"retries huge", `{` + req + `,"retries":99999999999999999999}`, "retries", `must be an integer >= 0`},
		{"correlation a bool", `{` + req + `,"correlation_id":true}`, "correlation_id", `key "correlation_id" must be a string or null, got boolean`},
		{"expires garbage", `{` + req + `,"expires":"tomorrow"}`, "expires", `cqrsync: malformed payload: key "expires" is not a valid datetime: parsing datetime "tomorrow"`},
		{"expires a number", `{` + req + `,"expires":1700000000}`, "expires", `key "expires" must be a datetime string or null, got number`},
		{"expires bad offset", `{` + req + `,"expires":"2026-11-24T15:01:46+5"}`, "expires", `key "expires" is not a valid datetime`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := DecodePayload([]byte(tt.body), time.Now())
			if err == nil {
				t.Fatalf("DecodePayload(%s) = %+v, want error", tt.body, p)
			}
			if !errors.Is(err, ErrMalformedPayload) {
				t.Errorf("error %v does not match ErrMalformedPayload", err)
			}
			var pe *PayloadError
			if !errors.As(err, &pe) {
				t.Fatalf("error %T is not a *PayloadError", err)
			}
			if pe.Field != tt.field {
				t.Errorf("Field = %q, want %q", pe.Field, tt.field)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error = %q, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestPayloadAppendJSON(t *testing.T) {
	t.Parallel()
	ist := time.FixedZone("IST", 5*3600+1800)
	tests := []struct {
		name string
		p    Payload
		want string
	}{
		{
			name: "built by a master",
			p: Payload{
				SignalType: SignalSave,
				CQRSID:     "djpeer_basic",
				InstanceData: Object{
					{Key: "id", Value: int64(1)},
					{Key: "cqrs_revision", Value: int64(0)},
					{Key: "cqrs_updated", Value: "2026-11-23 15:01:46.452153+00:00"},
					{Key: "decimal_field", Value: 10.0},
					{Key: "path", Value: "a/b"},
				},
				InstancePK: int64(1),
				Expires:    time.Date(2026, 11, 24, 20, 31, 46, 999999999, ist),
				Meta:       Object{},
			},
			want: `{"signal_type":"SAVE","cqrs_id":"djpeer_basic","instance_data":{"id":1,"cqrs_revision":0,"cqrs_updated":"2026-11-23 15:01:46.452153+00:00","decimal_field":10.0,"path":"a\/b"},"previous_data":null,"instance_pk":1,"correlation_id":null,"retries":0,"expires":"2026-11-24T15:01:46+00:00","meta":{}}`,
		},
		{
			name: "all optional set",
			p: Payload{
				SignalType:    SignalDelete,
				CQRSID:        "m",
				InstanceData:  Object{{Key: "id", Value: "é"}},
				PreviousData:  Object{{Key: "owner_id", Value: nil}},
				InstancePK:    "é",
				CorrelationID: "corr/1",
				Retries:       2,
				Meta:          Object{{Key: "tags", Value: []string{"a"}}},
			},
			want: `{"signal_type":"DELETE","cqrs_id":"m","instance_data":{"id":"\u00e9"},"previous_data":{"owner_id":null},"instance_pk":"\u00e9","correlation_id":"corr\/1","retries":2,"expires":null,"meta":{"tags":["a"]}}`,
		},
		{
			name: "zero payload",
			p:    Payload{},
			want: `{"signal_type":"","cqrs_id":"","instance_data":null,"previous_data":null,"instance_pk":null,"correlation_id":null,"retries":0,"expires":null,"meta":null}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := tt.p.AppendJSON(nil)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("AppendJSON =\n%s\nwant\n%s", got, tt.want)
			}
			m, err := tt.p.MarshalJSON()
			if err != nil || string(m) != tt.want {
				t.Errorf("MarshalJSON = %s, %v; want %s", m, err, tt.want)
			}
		})
	}
}

func TestPayloadAppendJSONErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		p       Payload
		wantErr string
	}{
		{"bad instance_data", Payload{InstanceData: Object{{Key: "t", Value: time.Now()}}}, "instance_data: encoding JSON: unsupported Go type time.Time"},
		{"bad previous_data", Payload{PreviousData: Object{{Key: "f", Value: 1.0 / zero()}}}, "previous_data"},
		{"bad pk", Payload{InstancePK: struct{}{}}, "instance_pk"},
		{"bad meta", Payload{Meta: Object{{Key: "x", Value: json.Number("x")}}}, "meta"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := tt.p.AppendJSON(nil)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "cqrsync: encoding payload") {
				t.Errorf("err = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func zero() float64 { return 0 }

func TestPayloadEncodingJSON(t *testing.T) {
	t.Parallel()
	var p Payload
	if err := json.Unmarshal([]byte(basicCreateFullBody), &p); err != nil {
		t.Fatal(err)
	}
	if p.CQRSID != "djpeer_basic" || p.SignalType != SignalSave {
		t.Errorf("json.Unmarshal gave %+v", p)
	}
	out, err := json.Marshal(&p)
	if err != nil {
		t.Fatal(err)
	}
	// encoding/json re-escapes <, > and & in a MarshalJSON result.
	var want bytes.Buffer
	json.HTMLEscape(&want, []byte(basicCreateFullBody))
	if !bytes.Equal(out, want.Bytes()) {
		t.Errorf("json.Marshal =\n%s\nwant\n%s", out, want.Bytes())
	}
	if err := json.Unmarshal([]byte(`{"cqrs_id":"m"}`), &p); !errors.Is(err, ErrMalformedPayload) {
		t.Errorf("json.Unmarshal of an incomplete body: %v", err)
	}
}

func TestSignalTypeValid(t *testing.T) {
	t.Parallel()
	for s, want := range map[SignalType]bool{SignalSave: true, SignalDelete: true, SignalSync: true, "UPSERT": false, "save": false, "": false} {
		if s.Valid() != want {
			t.Errorf("%q.Valid() = %v, want %v", s, !want, want)
		}
	}
}

func TestPayloadRevision(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		data    Object
		want    int64
		wantErr string
	}{
		{"wire integer", Object{{Key: "cqrs_revision", Value: json.Number("7")}}, 7, ""},
		{"Go int64", Object{{Key: "cqrs_revision", Value: int64(3)}}, 3, ""},
		{"Go int", Object{{Key: "cqrs_revision", Value: 4}}, 4, ""},
		{"float literal", Object{{Key: "cqrs_revision", Value: json.Number("1.0")}}, 0, `key "instance_data.cqrs_revision" must be an integer, got "1.0"`},
		{"string", Object{{Key: "cqrs_revision", Value: "1"}}, 0, `key "instance_data.cqrs_revision" must be an integer, got string`},
		{"missing", Object{{Key: "id", Value: 1}}, 0, `key "instance_data.cqrs_revision" is missing`},
		{"null instance_data", nil, 0, `key "instance_data" is null`},
		{"too big", Object{{Key: "cqrs_revision", Value: json.Number("9223372036854775808")}}, 0, "must be an integer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := &Payload{InstanceData: tt.data}
			got, err := p.Revision()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrMalformedPayload) {
					t.Errorf("Revision() = %d, %v; want error %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("Revision() = %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

func TestPayloadUpdated(t *testing.T) {
	t.Parallel()
	ref := time.Date(2026, 11, 23, 15, 1, 46, 452153000, time.UTC)
	tests := []struct {
		name    string
		data    Object
		want    time.Time
		wantErr string
	}{
		{"canonical", Object{{Key: "cqrs_updated", Value: "2026-11-23 15:01:46.452153+00:00"}}, ref, ""},
		{"other offset", Object{{Key: "cqrs_updated", Value: "2026-11-23T20:31:46.452153+05:30"}}, ref, ""},
		{"time.Time", Object{{Key: "cqrs_updated", Value: ref}}, ref, ""},
		{"garbage", Object{{Key: "cqrs_updated", Value: "yesterday"}}, time.Time{}, `key "instance_data.cqrs_updated" is not a valid datetime`},
		{"number", Object{{Key: "cqrs_updated", Value: json.Number("1")}}, time.Time{}, `must be a datetime string, got number`},
		{"missing", Object{}, time.Time{}, `key "instance_data.cqrs_updated" is missing`},
		{"null instance_data", nil, time.Time{}, `key "instance_data" is null`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := &Payload{InstanceData: tt.data}
			got, err := p.Updated()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrMalformedPayload) {
					t.Errorf("Updated() = %v, %v; want error %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || !got.Equal(tt.want) {
				t.Errorf("Updated() = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestPayloadExpired(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		expires time.Time
		want    bool
	}{
		{"never", time.Time{}, false},
		{"in the past", now.Add(-time.Second), true},
		{"exactly now", now, true},
		{"in the future", now.Add(time.Nanosecond), false},
		{"same instant, other zone", now.In(time.FixedZone("", 3600)), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := &Payload{Expires: tt.expires}
			if got := p.Expired(now); got != tt.want {
				t.Errorf("Expired = %v, want %v", got, tt.want)
			}
		})
	}
}

func FuzzDecodePayload(f *testing.F) {
	f.Add([]byte(basicCreateFullBody))
	f.Add([]byte(`{"signal_type":"UPSERT","cqrs_id":"m","instance_data":null,"instance_pk":"x","correlation_id":12,"retries":3,"expires":"2026-11-24 15:01:46.5-05:00","meta":{"a":[]}}`))
	f.Add([]byte(`{"signal_type":"SAVE","cqrs_id":"m","instance_data":{},"instance_pk":1}`))
	f.Add([]byte(`{"signal_type":"SAVE","cqrs_id":"m","instance_data":{},"instance_pk":1,"expires":"0001-01-01T00:30:00+01:00"}`))
	f.Add([]byte(`this is not json`))
	now := time.Date(2026, 11, 23, 15, 0, 0, 500, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := DecodePayload(body, now)
		if err != nil {
			var pe *PayloadError
			if !errors.As(err, &pe) || !errors.Is(err, ErrMalformedPayload) {
				t.Fatalf("DecodePayload(%q): error %T %v is not a PayloadError", body, err, err)
			}
			return
		}
		enc, err := p.AppendJSON(nil)
		if err != nil {
			t.Fatalf("AppendJSON of decoded %q: %v", body, err)
		}
		p2, err := DecodePayload(enc, now)
		if err != nil {
			t.Fatalf("DecodePayload(%q) of our own encoding: %v", enc, err)
		}
		// expires is written in whole seconds.
		if want := p.Expires.Truncate(time.Second); !p2.Expires.Equal(want) {
			t.Fatalf("Expires %v after the round trip, want %v", p2.Expires, want)
		}
		a, b := *p, *p2
		a.Expires, b.Expires = time.Time{}, time.Time{}
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("round trip of %q via %q:\n%#v\n!=\n%#v", body, enc, b, a)
		}
		enc2, err := p2.AppendJSON(nil)
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not stable: %q then %q (%v)", enc, enc2, err)
		}
	})
}

func BenchmarkDecodePayload(b *testing.B) {
	body := []byte(basicCreateFullBody)
	now := time.Now()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodePayload(body, now); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodePayload(b *testing.B) {
	p, err := DecodePayload([]byte(basicCreateFullBody), time.Now())
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 0, 1024)
	b.SetBytes(int64(len(basicCreateFullBody)))
	b.ReportAllocs()
	for b.Loop() {
		if buf, err = p.AppendJSON(buf[:0]); err != nil {
			b.Fatal(err)
		}
	}
	if !slices.Equal(buf, []byte(basicCreateFullBody)) {
		b.Fatalf("encoded %s", buf)
	}
}

func TestRestampExpires(t *testing.T) {
	t.Parallel()
	captured := time.Date(2026, 5, 1, 12, 0, 0, 700_000_000, time.UTC)
	now := captured.Add(time.Hour + 500*time.Millisecond)
	cases := []struct{ name, body, want string }{
		{"TTL kept, moved to publish time",
			`{"signal_type":"SAVE","cqrs_id":"a","instance_data":{"id":1},"previous_data":null,"instance_pk":1,"correlation_id":null,"retries":0,"expires":"2026-05-01T12:00:02+00:00","meta":{}}`,
			`{"signal_type":"SAVE","cqrs_id":"a","instance_data":{"id":1},"previous_data":null,"instance_pk":1,"correlation_id":null,"retries":0,"expires":"2026-05-01T13:00:03+00:00","meta":{}}`},
		{"nested expires keys untouched",
			`{"instance_data":{"expires":"2026-05-01T12:00:02+00:00","retries":0},"expires":"2026-05-02T12:00:00+00:00","meta":{"expires":"x","a":{"expires":1}}}`,
			`{"instance_data":{"expires":"2026-05-01T12:00:02+00:00","retries":0},"expires":"2026-05-02T13:00:01+00:00","meta":{"expires":"x","a":{"expires":1}}}`},
		{"never expires", `{"instance_pk":1,"expires":null,"meta":{}}`, `{"instance_pk":1,"expires":null,"meta":{}}`},
		{"no expires", `{"instance_pk":1}`, `{"instance_pk":1}`},
		{"not JSON", `event 1`, `event 1`},
		{"expires not after capture", `{"expires":"2026-05-01T11:00:00+00:00"}`, `{"expires":"2026-05-01T11:00:00+00:00"}`},
		{"not a datetime", `{"expires":"soon"}`, `{"expires":"soon"}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if got := RestampExpires(nil, []byte(c.body), captured, now); string(got) != c.want {
				t.Fatalf("RestampExpires\n got %s\nwant %s", got, c.want)
			}
		})
	}
}

func BenchmarkDecodeJSON(b *testing.B) {
	body := []byte(basicCreateFullBody)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeJSON(body); err != nil {
			b.Fatal(err)
		}
	}
}
