package sqldialect_test

import (
	"errors"
	"maps"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync/sqldialect"
)

func TestWALMessageRoundTrip(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 1, 2, 3, 4, 5, 678901000, time.UTC)
	for _, tc := range []struct {
		name string
		row  sqldialect.OutboxRow
	}{
		{"plain", sqldialect.OutboxRow{CQRSID: "item", Body: []byte(`{"a":1}`), CreatedAt: at}},
		{"direct with headers", sqldialect.OutboxRow{CQRSID: "item", Queue: "billing", Body: []byte(`{"é":"世"}`), CreatedAt: at,
			Headers: map[string]string{"correlation_id": "c-1", "traceparent": "00-ab-cd-01"}}},
		{"empty body, before 1970", sqldialect.OutboxRow{CQRSID: "x", CreatedAt: time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC), Body: []byte{}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := sqldialect.ParseWALMessage(sqldialect.AppendWALMessage(nil, &tc.row))
			if err != nil {
				t.Fatal(err)
			}
			if got.CQRSID != tc.row.CQRSID || got.Queue != tc.row.Queue || string(got.Body) != string(tc.row.Body) ||
				!got.CreatedAt.Equal(tc.row.CreatedAt) || !maps.Equal(got.Headers, tc.row.Headers) {
				t.Fatalf("got %+v, want %+v", got, tc.row)
			}
		})
	}
}

func TestWALMessageRefusesWhatItCannotRead(t *testing.T) {
	t.Parallel()
	good := sqldialect.AppendWALMessage(nil, &sqldialect.OutboxRow{CQRSID: "item", Body: []byte("{}")})
	for name, b := range map[string][]byte{
		"empty":         nil,
		"other version": append([]byte{9}, good[1:]...),
		"truncated":     good[:3],
	} {
		if _, err := sqldialect.ParseWALMessage(b); !errors.Is(err, sqldialect.ErrBadWALMessage) {
			t.Errorf("%s: %v, want ErrBadWALMessage", name, err)
		}
	}
}

func TestEmitOutboxOnlyOnPostgres(t *testing.T) {
	t.Parallel()
	for _, d := range []sqldialect.Dialect{sqldialect.SQLite(), sqldialect.MySQL()} {
		err := d.EmitOutbox(t.Context(), nil, []sqldialect.OutboxRow{{CQRSID: "item"}})
		if !errors.Is(err, errors.ErrUnsupported) {
			t.Errorf("%s: %v, want errors.ErrUnsupported", d.Name(), err)
		}
	}
}

func TestWALRetraction(t *testing.T) {
	t.Parallel()
	if lsn, ok := sqldialect.WALRetraction(sqldialect.AppendWALRetraction(nil, 0x16B374D848)); !ok || lsn != 0x16B374D848 {
		t.Fatalf("round trip: %x %v", lsn, ok)
	}
	event := sqldialect.AppendWALMessage(nil, &sqldialect.OutboxRow{CQRSID: "item"})
	if _, ok := sqldialect.WALRetraction(event); ok {
		t.Fatal("an event message read as a retraction")
	}
}
