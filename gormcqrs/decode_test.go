package gormcqrs_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/gormcqrs"
	"github.com/cqrsync/cqrsync/gormcqrs/internal/gormtest"
)

// decoded is a replica model with a field of each kind Decode converts to.
type decoded struct {
	ID       int64
	Count    int32
	Ratio    float64
	Price    string // a decimal arrives as a string
	Active   bool
	Born     time.Time
	Seen     *time.Time
	Tags     []string       `gorm:"serializer:json"`
	Profile  map[string]any `gorm:"serializer:json"`
	Owner    string         `cqrs:"owner_name"`
	Internal string         `cqrs:"-"`
	gormcqrs.Revision
}

func TestDecode(t *testing.T) {
	t.Parallel()
	db := openSQLite(t, gormtest.Config())
	data := cqrsync.Object{
		{Key: "id", Value: json.Number("7")},
		{Key: "count", Value: json.Number("42")},
		{Key: "ratio", Value: json.Number("0.25")},
		{Key: "price", Value: "12.3400"},
		{Key: "active", Value: true},
		{Key: "born", Value: "2001-02-03T04:05:06.789+00:00"},
		{Key: "seen", Value: nil},
		{Key: "tags", Value: []any{"a", "b"}},
		{Key: "profile", Value: cqrsync.Object{{Key: "tier", Value: "gold"}, {Key: "score", Value: json.Number("3")}}},
		{Key: "owner_name", Value: "Ada"},
		{Key: "internal", Value: "must not be read"},
		{Key: "cqrs_revision", Value: json.Number("5")},
		{Key: "cqrs_updated", Value: "2026-03-04 05:06:07.123456+00:00"},
		{Key: "unknown", Value: "ignored"},
	}
	got := decoded{Internal: "kept"}
	if err := gormcqrs.Decode(db, data, &got); err != nil {
		t.Fatal(err)
	}
	want := "7 42 0.25 12.3400 true 2001-02-03T04:05:06.789Z <nil> [a b] map[score:3 tier:gold] Ada kept 5 2026-03-04T05:06:07.123456Z"
	text := fmt.Sprintf("%d %d %v %s %v %s %v %v %v %s %s %d %s", got.ID, got.Count, got.Ratio, got.Price, got.Active,
		got.Born.UTC().Format(time.RFC3339Nano), got.Seen, got.Tags, got.Profile, got.Owner, got.Internal, got.CQRSRevision, got.CQRSUpdated.UTC().Format(time.RFC3339Nano))
	if text != want {
		t.Fatalf("decoded:\n%s\nwant\n%s", text, want)
	}

	rm, err := gormcqrs.ReplicaModel(db, &decoded{}, "decoded")
	if err != nil {
		t.Fatal(err)
	}
	if rm.Table != "decodeds" || rm.PK != "id" || rm.Mapping["owner_name"] != "owner" || rm.Mapping["count"] != "count" || len(rm.Mapping) != 10 {
		t.Fatalf("ReplicaModel: %+v", rm)
	}
	if err := gormcqrs.Decode(db, cqrsync.Object{{Key: "count", Value: "many"}}, &got); err == nil {
		t.Fatal("a string decoded into an int32 field")
	}
}
