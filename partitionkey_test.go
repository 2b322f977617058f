package cqrsync_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/transport"
)

func TestPartitionKey(t *testing.T) {
	t.Parallel()
	encode := func(cqrsID string, pk any, name string) transport.Message {
		p := &cqrsync.Payload{SignalType: cqrsync.SignalSave, CQRSID: cqrsID, InstancePK: pk,
			InstanceData: cqrsync.Object{{Key: "id", Value: pk}, {Key: "name", Value: name}}, Expires: time.Unix(1e9, 0).UTC()}
		body, err := p.AppendJSON(nil)
		if err != nil {
			t.Fatal(err)
		}
		return transport.Message{CQRSID: cqrsID, Body: body}
	}
	key := func(m transport.Message) []byte { return cqrsync.PartitionKey(&m) }
	cases := []struct {
		name string
		a, b transport.Message
		same bool
	}{
		{"one row, two versions", encode("item", 7, "a"), encode("item", 7, "b"), true},
		{"two rows", encode("item", 7, "a"), encode("item", 8, "a"), false},
		{"two models, one pk", encode("item", 7, "a"), encode("order", 7, "a"), false},
		{"unreadable bodies of one model", transport.Message{CQRSID: "item", Body: []byte("nope")}, transport.Message{CQRSID: "item", Body: []byte("{")}, true},
	}
	for _, tc := range cases {
		if got := bytes.Equal(key(tc.a), key(tc.b)); got != tc.same {
			t.Errorf("%s: same key = %v, want %v (%q, %q)", tc.name, got, tc.same, key(tc.a), key(tc.b))
		}
	}
}
