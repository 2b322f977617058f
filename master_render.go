package cqrsync

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/cqrsync/cqrsync/internal/ujson"
	"github.com/cqrsync/cqrsync/sqldialect"
)

// RenderOutbox turns an outbox row that a capture trigger wrote (a row
// image, see package capture/trigger) into the event library capture would
// have written for the same change: the same instance_data, previous_data
// (tracked fields from the row as it was), meta, correlation ID and
// expiry, through the same serialization, so the body is byte for byte
// the one Create, Update or Delete would have built. It replaces row.Body
// and row.Headers. publish is false when there is no event to send (the
// model's IsSyncInstance refused the row, or its produce is off): the
// relay then deletes the row unpublished. A row that is already an event
// is left alone (publish true). An *outbox.Relay calls it when its
// Config.Renderer is this Master.
//
// Rendering runs at publish time, outside the writer's transaction: a
// model's Serializer, Meta and CorrelationID functions see the relay's
// context, and a Serializer reads related rows as they are then, on the
// master's pool.
func (m *Master[TTx]) RenderOutbox(ctx context.Context, row *sqldialect.OutboxRow) (publish bool, err error) {
	if !sqldialect.IsRowImage(row.Body) {
		return true, nil
	}
	img, err := decodeRowImage(row.Body)
	if err != nil {
		return false, fmt.Errorf("cqrsync: outbox row %d of %s: %w", row.ID, row.CQRSID, err)
	}
	mm, err := m.model(row.CQRSID)
	if err != nil {
		return false, err
	}
	if mm.NoProduce {
		return false, nil
	}
	ex := m.drv.Pool()
	ti, err := m.table(ctx, ex, mm)
	if err != nil {
		return false, err
	}
	now := row.CreatedAt
	var ev sqldialect.OutboxRow
	var ok bool
	switch img.op {
	case "INSERT", "UPDATE":
		cur, err := m.imageRow(mm, ti, img.new)
		if err != nil {
			return false, err
		}
		var prev Object
		if img.op == "INSERT" {
			prev = previousData(mm, cur, true, nil)
		} else if len(mm.TrackedFields) > 0 {
			old, err := m.imageRow(mm, ti, img.old)
			if err != nil {
				return false, err
			}
			prev = changedTracked(mm, cur, old.all)
		}
		datas, err := m.instanceDatas(ctx, ex, mm, []masterRow{cur})
		if err != nil {
			return false, err
		}
		ev, ok, err = m.event(ctx, mm, SignalSave, cur, datas[0], prev, now, "")
		if err != nil {
			return false, err
		}
	case "DELETE":
		old, err := m.imageRow(mm, ti, img.old)
		if err != nil {
			return false, err
		}
		_, ev, ok, err = m.deleteEvent(ctx, mm, old, img.at)
		if err != nil {
			return false, err
		}
	default:
		return false, fmt.Errorf("cqrsync: outbox row %d of %s: row image of unknown operation %q", row.ID, row.CQRSID, img.op)
	}
	if !ok {
		return false, nil
	}
	row.Body, row.Headers = ev.Body, ev.Headers
	return true, nil
}

// rowImage is a decoded capture trigger's outbox row.
type rowImage struct {
	op       string
	at       time.Time // when the trigger ran (a DELETE's cqrs_updated)
	new, old Object
}

func decodeRowImage(body []byte) (*rowImage, error) {
	v, err := DecodeJSON(body)
	if err != nil {
		return nil, fmt.Errorf("row image: %w", err)
	}
	o, ok := v.(Object)
	if !ok {
		return nil, fmt.Errorf("row image is %s, want an object", ujson.Kind(v))
	}
	img := &rowImage{}
	opV, _ := o.Get("op")
	img.op, _ = opV.(string)
	if atV, ok := o.Get("at"); ok {
		n, _ := atV.(json.Number)
		us, err := n.Int64()
		if err != nil {
			return nil, fmt.Errorf("row image: at is %v, want Unix microseconds", atV)
		}
		img.at = time.UnixMicro(us).UTC()
	}
	for _, side := range []struct {
		key string
		dst *Object
	}{{"new", &img.new}, {"old", &img.old}} {
		sv, _ := o.Get(side.key)
		if sv == nil {
			continue
		}
		so, ok := sv.(Object)
		if !ok {
			return nil, fmt.Errorf("row image: %s is %s, want an object", side.key, ujson.Kind(sv))
		}
		*side.dst = so
	}
	return img, nil
}

// imageRow converts one side of a row image into the row library capture
// would have read: every column of the table, in table order, as a wire
// value of the column's type.
func (m *Master[TTx]) imageRow(mm *MasterModel, ti *tableInfo, image Object) (masterRow, error) {
	if image == nil {
		return masterRow{}, &ModelError{CQRSID: mm.CQRSID, Err: fmt.Errorf("row image lacks the row")}
	}
	all := make(Object, len(ti.columns))
	mysql := m.drv.Dialect().Name() == "mysql"
	for i, c := range ti.columns {
		raw, ok := image.Get(c.Name)
		if !ok {
			return masterRow{}, &ModelError{CQRSID: mm.CQRSID, Err: fmt.Errorf(
				"the capture trigger's row image has no column %s: the table changed since the triggers were installed: run cqrsync capture install -c %s again", c.Name, mm.CQRSID)}
		}
		v, err := imageValue(mysql, c, ti.types[c.Name], raw)
		if err != nil {
			return masterRow{}, &ModelError{CQRSID: mm.CQRSID, Err: fmt.Errorf("column %s: %w", c.Name, err)}
		}
		all[i] = Member{Key: c.Name, Value: v}
	}
	return masterRow{pk: all[ti.byName[mm.PK]].Value, all: all}, nil
}

// imageValue converts a row image's value of column c into its wire value:
// on MySQL the image holds each column's text (binary columns in hex), as
// the driver would return it; on PostgreSQL row_to_json's values (bytea as
// \x hex, JSON columns embedded).
func imageValue(mysql bool, c sqldialect.Column, t ValueType, raw any) (any, error) {
	if raw == nil {
		return nil, nil
	}
	declared := strings.ToLower(c.DeclaredType)
	s, isText := raw.(string)
	switch {
	case mysql && isText && (strings.Contains(declared, "binary") || strings.Contains(declared, "blob")):
		b, err := hex.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("row image: binary value is not hex: %w", err)
		}
		return WireValue(t, b)
	case !mysql && isText && declared == "bytea" && strings.HasPrefix(s, `\x`):
		b, err := hex.DecodeString(s[2:])
		if err != nil {
			return nil, fmt.Errorf("row image: bytea value is not hex: %w", err)
		}
		return WireValue(t, b)
	case !mysql && t == TypeJSON:
		return raw, nil // row_to_json embeds the JSON value itself
	}
	return WireValue(t, raw)
}

// markCapture tells the table's capture triggers, if it has any, that the
// statements that follow are this capture's (see
// sqldialect.MarkLibraryCapture), so one change makes one event. Whether
// the table has triggers is read with its columns (Check, or the first
// capture) and cached with them. Call the returned func when the
// statements are done; it is never nil.
func (m *Master[TTx]) markCapture(ctx context.Context, ex sqldialect.Executor, mm *MasterModel, ti *tableInfo, pks []any) (func(), error) {
	if !ti.triggers {
		return func() {}, nil
	}
	keys := make([]string, 0, len(pks))
	for _, pk := range pks {
		if wire, err := WireValue(ti.types[mm.PK], pk); err == nil && wire != nil {
			keys = append(keys, keyString(wire))
		}
	}
	return sqldialect.MarkLibraryCapture(ctx, ex, m.drv.Dialect(), mm.CQRSID, keys)
}
