package kafka

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cqrsync/cqrsync/transport"
)

// BrowseDeadLetters calls fn for each dead letter in dlq's topic, oldest
// first, skipping removed and expired ones; it removes nothing.
func (t *Transport) BrowseDeadLetters(ctx context.Context, dlq string, fn func(ctx context.Context, m *transport.Message) error) error {
	_, err := t.ScanDeadLetters(ctx, dlq, transport.KeepAll(fn))
	return err
}

// ScanDeadLetters calls fn for each dead letter in dlq's topic when the scan
// starts, oldest first, and removes those fn says to by writing a tombstone
// (a record with the dead letter's key and no value): later scans skip it,
// and the topic's compaction deletes both. See the package documentation.
func (t *Transport) ScanDeadLetters(ctx context.Context, dlq string, fn func(ctx context.Context, m *transport.Message) (transport.DeadLetterAction, error)) (int, error) {
	letters, err := t.readDeadLetters(ctx, dlq)
	if err != nil || len(letters) == 0 {
		return 0, err
	}
	removed := 0
	for _, r := range letters {
		m, _ := decode(r)
		m.Queue = dlq
		action, err := fn(ctx, &m)
		if err != nil { // this dead letter and the rest stay, whatever action says
			return removed, fmt.Errorf("kafka: dead letters of %q: %w", dlq, err)
		}
		if action == transport.DeadLetterRemove {
			if err := t.tombstone(ctx, r); err != nil {
				return removed, err
			}
			removed++
		}
	}
	return removed, nil
}

// PurgeDeadLetters writes a tombstone for every dead letter in dlq and
// returns how many. Nothing consumes a dead-letter topic, so no dead letter
// is held unacknowledged.
func (t *Transport) PurgeDeadLetters(ctx context.Context, dlq string) (int, error) {
	return t.ScanDeadLetters(ctx, dlq, func(context.Context, *transport.Message) (transport.DeadLetterAction, error) {
		return transport.DeadLetterRemove, nil
	})
}

func (t *Transport) tombstone(ctx context.Context, r *kgo.Record) error {
	ts := &kgo.Record{Topic: r.Topic, Partition: r.Partition, Key: r.Key, Headers: []kgo.RecordHeader{{Key: hRemoved, Value: []byte("1")}}}
	if err := t.cl.ProduceSync(ctx, ts).FirstErr(); err != nil {
		return fmt.Errorf("kafka: remove a dead letter from %s: %w", r.Topic, err)
	}
	return nil
}

// readDeadLetters returns the live dead letters of dlq up to the topic's
// end when called, oldest first.
func (t *Transport) readDeadLetters(ctx context.Context, dlq string) ([]*kgo.Record, error) {
	if t.isClosed() {
		return nil, t.closedErr("dead letters")
	}
	if err := topicName("dead-letter queue", dlq); err != nil {
		return nil, err
	}
	topic := t.cfg.deadTopic(dlq)
	if ok, err := t.exists(ctx, topic); err != nil || !ok {
		return nil, err // never declared: no dead letters
	}
	ends, err := t.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("kafka: end offsets of %s: %w", topic, err)
	}
	starts, err := t.adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("kafka: start offsets of %s: %w", topic, err)
	}
	from := map[int32]kgo.Offset{}
	end := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		st, ok := starts.Lookup(o.Topic, o.Partition)
		if o.Err != nil || !ok || st.Err != nil || o.Offset <= st.Offset {
			return
		}
		from[o.Partition] = kgo.NewOffset().At(st.Offset)
		end[o.Partition] = o.Offset
	})
	if err := errors.Join(ends.Error(), starts.Error()); err != nil {
		return nil, fmt.Errorf("kafka: offsets of %s: %w", topic, err)
	}
	if len(from) == 0 {
		return nil, nil
	}
	cl, err := t.cfg.newClient(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: from}))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	var recs []*kgo.Record
	for len(end) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("kafka: read %s: %w", topic, err)
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) { ferr = errors.Join(ferr, err) })
		if ferr != nil {
			return nil, fmt.Errorf("kafka: read %s: %w", topic, ferr)
		}
		fs.EachRecord(func(r *kgo.Record) {
			e, ok := end[r.Partition]
			if !ok || r.Offset >= e {
				return
			}
			recs = append(recs, r)
			if r.Offset == e-1 {
				delete(end, r.Partition)
			}
		})
	}
	removed := map[string]bool{}
	for _, r := range recs {
		if _, md := decode(r); md.removed {
			removed[string(r.Key)] = true
		}
	}
	now := t.cfg.Now().UnixMilli()
	live := recs[:0]
	for _, r := range recs {
		_, md := decode(r)
		if md.removed || removed[string(r.Key)] || md.expires > 0 && now >= md.expires {
			continue
		}
		live = append(live, r)
	}
	return live, nil
}
