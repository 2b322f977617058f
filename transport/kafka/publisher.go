package kafka

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cqrsync/cqrsync/transport"
)

// errNoQueue is why an IntoQueue message whose queue was never declared
// fails.
var errNoQueue = errors.New("no such queue: no Subscribe declared it (its topic does not exist)")

// Publish sends msgs and returns once the brokers acknowledged every record
// (acks from all in-sync replicas, idempotent producer). Records for one
// topic and key keep the order of msgs.
//
// A broadcast goes to the broadcast topic, created on first use. A message
// with Queue set goes to that dead-letter queue's topic if Queue names one,
// else to that replica queue's topic; a queue that no Subscribe declared has
// no topic, and its message is dropped silently, as RabbitMQ drops an
// unroutable message (an IntoQueue message fails instead, listed in
// [transport.PublishError.Failed]). See the package documentation.
func (t *Transport) Publish(ctx context.Context, msgs []transport.Message) error {
	if t.isClosed() {
		return t.closedErr("publish")
	}
	if len(msgs) == 0 {
		return nil
	}
	now := t.cfg.Now()
	recs := make([]*kgo.Record, 0, len(msgs))
	idx := make([]int, 0, len(msgs))
	var (
		failed []int
		cause  error
	)
	fail := func(i int, err error) {
		failed = append(failed, i)
		if cause == nil {
			cause = err
		}
	}
	for i := range msgs {
		m := &msgs[i]
		r, err := t.record(ctx, m, now)
		if err != nil {
			fail(i, err)
			continue
		}
		if r == nil {
			continue // unroutable: dropped
		}
		recs = append(recs, r)
		idx = append(idx, i)
	}
	if len(recs) > 0 {
		for j, res := range t.cl.ProduceSync(ctx, recs...) {
			if res.Err != nil {
				fail(idx[j], fmt.Errorf("produce to %s: %w", res.Record.Topic, res.Err))
			}
		}
	}
	if len(failed) > 0 {
		slices.Sort(failed)
		if errors.Is(cause, kgo.ErrClientClosed) {
			cause = fmt.Errorf("%w: %w", transport.ErrClosed, cause)
		}
		return &transport.PublishError{Failed: failed, Err: fmt.Errorf("kafka: %w", cause)}
	}
	return nil
}

// record routes m: it returns its record, or nil when no queue can receive
// it.
func (t *Transport) record(ctx context.Context, m *transport.Message, now time.Time) (*kgo.Record, error) {
	key := t.cfg.Key(m)
	if m.Queue == "" {
		topic := t.cfg.broadcastTopic(m.CQRSID)
		if err := t.ensureTopics(ctx, t.cfg.Partitions, nil, topic); err != nil {
			return nil, err
		}
		return newRecord(topic, key, m, now), nil
	}
	if dead := t.cfg.deadTopic(m.Queue); topicName("queue", m.Queue) == nil {
		ok, err := t.exists(ctx, dead)
		if err != nil {
			return nil, err
		}
		if ok {
			return newRecord(dead, deadLetterKey(key), m, now), nil
		}
		topic := t.cfg.queueTopic(m.Queue)
		if ok, err = t.exists(ctx, topic); err != nil {
			return nil, err
		}
		if ok {
			return newRecord(topic, key, m, now), nil
		}
	}
	if m.IntoQueue {
		return nil, fmt.Errorf("queue %q: %w", m.Queue, errNoQueue)
	}
	return nil, nil
}

// deadLetterKey is a dead letter's record key: unique, so that removing one
// (a tombstone with its key) removes no other.
func deadLetterKey(rowKey []byte) []byte {
	var b [8]byte
	_, _ = rand.Read(b[:])
	k := make([]byte, 0, len(rowKey)+17)
	k = append(k, rowKey...)
	k = append(k, '/')
	return hex.AppendEncode(k, b[:])
}
