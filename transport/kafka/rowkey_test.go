package kafka

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/cqrsync/cqrsync/transport"
)

func TestRowKey(t *testing.T) {
	t.Parallel()
	for body, want := range map[string]string{
		`{"signal_type":"SAVE","cqrs_id":"a","instance_data":{"instance_pk":99,"s":"}\"{"},"instance_pk":7}`: "a\x007",
		` { "instance_pk" : "k-1" , "x": [1,{"y":"]"}] }`:                                                    "a\x00k-1",
		`{"instance_data":{"instance_pk":1}}`:                                                                "a",
		`not json`:                                                                                           "a",
		``:                                                                                                   "a",
		`{"instance_pk":`:                                                                                    "a",
	} {
		if got := string(RowKey(&transport.Message{CQRSID: "a", Body: []byte(body)})); got != want {
			t.Errorf("RowKey(%s) = %q, want %q", body, got, want)
		}
	}
}

// FuzzTopLevelField: on a valid JSON object, what the scanner finds is the
// member encoding/json finds (duplicate members aside), byte for byte.
func FuzzTopLevelField(f *testing.F) {
	f.Add([]byte(`{"a":1,"instance_pk":"x\"y","b":[{}]}`))
	f.Add([]byte(`{"instance_data":{"instance_pk":2},"instance_pk":3}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var obj map[string]json.RawMessage
		if json.Unmarshal(body, &obj) != nil {
			return
		}
		want, has := obj["instance_pk"]
		got, ok := topLevelField(body, "instance_pk")
		if !has {
			if ok {
				t.Fatalf("found %s in %s, which has none", got, body)
			}
			return
		}
		if ok && string(got) != string(want) && bytes.Count(body, []byte(`"instance_pk"`)) == 1 {
			t.Fatalf("found %s in %s, encoding/json %s", got, body, want)
		}
	})
}
