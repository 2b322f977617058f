package pgwal

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/cqrsync/cqrsync/sqldialect"
)

// StatusParams configures ReadStatus.
type StatusParams struct {
	// Slot is the relay's slot. Default DefaultSlot.
	Slot string
	// Publication is the relay's publication, for PeekOldest. Default
	// DefaultPublication.
	Publication string
	// PeekOldest, when the slot is not being streamed, decodes the slot's
	// first waiting transaction (pg_logical_slot_peek_binary_changes,
	// which leaves it in the slot) to tell when its oldest event was
	// captured. It reads WAL from the slot's restart position, and holds
	// the slot meanwhile (a relay starting then waits and retries): use it
	// in tools, not in a frequent metrics scrape.
	PeekOldest bool
}

// Status is a slot's state, as PostgreSQL reports it.
type Status struct {
	// Slot is the slot's name.
	Slot string
	// Exists is false when there is no such slot (no relay ever ran, or it
	// was dropped); the other fields are then zero.
	Exists bool
	// Active is true while a relay streams the slot; ActivePID is its
	// walsender's process ID then.
	Active    bool
	ActivePID int64
	// ConfirmedLSN is the position up to which the broker confirmed every
	// event ("16/B374D848").
	ConfirmedLSN string
	// LagBytes is how much WAL the server wrote after ConfirmedLSN: an
	// upper bound of what the relay still has to read (the whole server's
	// writes count, not only the master's events).
	LagBytes int64
	// RetainedBytes is how much WAL PostgreSQL keeps on disk for the slot
	// (from its restart position): with no relay running it grows with
	// every write to the server until the disk is full or the slot is
	// dropped (DropSlot).
	RetainedBytes int64
	// WALStatus is PostgreSQL's wal_status of the slot: "reserved",
	// "extended", "unreserved" or "lost" (max_slot_wal_keep_size exceeded:
	// the slot is useless and events are lost; drop and recreate it, then
	// re-send with cqrsync sync).
	WALStatus string
	// Age is how long the oldest unconfirmed event has waited. With the
	// slot idle and StatusParams.PeekOldest, it is exact (from the event's
	// capture time; Oldest is that time). With a relay streaming it is
	// PostgreSQL's flush_lag (pg_stat_replication): the time from a WAL
	// write to the relay's confirm, as last measured; 0 when caught up.
	Age    time.Duration
	Oldest time.Time
}

// ReadStatus reads the state of a relay's slot on ex (the master database:
// a pool or a connection, not a replication connection), for `cqrsync
// outbox status`, monitoring and metrics. A missing slot is not an error
// (Exists is false).
func ReadStatus(ctx context.Context, ex sqldialect.Executor, p *StatusParams) (*Status, error) {
	if p == nil {
		p = &StatusParams{}
	}
	st := &Status{Slot: cmp.Or(p.Slot, DefaultSlot)}
	rows, err := ex.Query(ctx, `SELECT s.active, COALESCE(s.active_pid, 0), COALESCE(s.confirmed_flush_lsn::text, ''),
		COALESCE(pg_wal_lsn_diff(pg_current_wal_lsn(), s.confirmed_flush_lsn), 0)::bigint,
		COALESCE(pg_wal_lsn_diff(pg_current_wal_lsn(), s.restart_lsn), 0)::bigint,
		COALESCE(s.wal_status, ''),
		COALESCE((SELECT EXTRACT(EPOCH FROM r.flush_lag) * 1e6 FROM pg_stat_replication r WHERE r.pid = s.active_pid), 0)::bigint
		FROM pg_replication_slots s WHERE s.slot_name = $1 AND s.database = current_database()`, st.Slot)
	if err != nil {
		return nil, fmt.Errorf("pgwal: read slot %s: %w", st.Slot, err)
	}
	var lagUS int64
	if rows.Next() {
		st.Exists = true
		err = rows.Scan(&st.Active, &st.ActivePID, &st.ConfirmedLSN, &st.LagBytes, &st.RetainedBytes, &st.WALStatus, &lagUS)
	}
	err = cmp.Or(err, rows.Err())
	rows.Close()
	if err != nil {
		return nil, fmt.Errorf("pgwal: read slot %s: %w", st.Slot, err)
	}
	if !st.Exists {
		return st, nil
	}
	st.Age = time.Duration(lagUS) * time.Microsecond
	if p.PeekOldest && !st.Active {
		oldest, err := peekOldest(ctx, ex, st.Slot, cmp.Or(p.Publication, DefaultPublication))
		if err != nil {
			return nil, err
		}
		st.Oldest, st.Age = oldest, 0
		if !oldest.IsZero() {
			st.Age = max(time.Since(oldest), 0)
		}
	}
	return st, nil
}

// peekOldest returns the capture time of the first cqrsync event waiting
// in the slot, zero when none, without consuming it.
func peekOldest(ctx context.Context, ex sqldialect.Executor, slot, publication string) (time.Time, error) {
	// upto_nchanges stops decoding at the end of the transaction that
	// holds the first changes; upto_lsn bounds a slot with nothing of ours.
	rows, err := ex.Query(ctx, `SELECT data FROM pg_logical_slot_peek_binary_changes($1, pg_current_wal_lsn(), 64,
		'proto_version', '1', 'publication_names', $2, 'messages', 'true')`, slot, publication)
	if err != nil {
		return time.Time{}, fmt.Errorf("pgwal: peek slot %s: %w", slot, err)
	}
	defer rows.Close()
	var oldest time.Time
	for rows.Next() {
		var data []byte
		if err := rows.Scan(&data); err != nil {
			return time.Time{}, fmt.Errorf("pgwal: peek slot %s: %w", slot, err)
		}
		if !oldest.IsZero() || len(data) == 0 || pglogrepl.MessageType(data[0]) != pglogrepl.MessageTypeMessage {
			continue
		}
		var m pglogrepl.LogicalDecodingMessage
		if err := m.Decode(data[1:]); err != nil || m.Prefix != sqldialect.WALMessagePrefix {
			continue
		}
		if row, err := sqldialect.ParseWALMessage(m.Content); err == nil {
			oldest = row.CreatedAt
		}
	}
	if err := rows.Err(); err != nil {
		return time.Time{}, fmt.Errorf("pgwal: peek slot %s: %w", slot, err)
	}
	return oldest, nil
}

// ErrNoSlot is returned by DropSlot when there is no such slot.
var ErrNoSlot = errors.New("pgwal: no such replication slot")

// DropSlot drops a relay's slot (default DefaultSlot) on ex, the master
// database, so PostgreSQL stops keeping WAL for it. Events not yet
// confirmed are lost with it: re-send the rows with cqrsync sync if a
// relay will run again. A slot a relay is streaming cannot be dropped:
// stop the relay first.
func DropSlot(ctx context.Context, ex sqldialect.Executor, slot string) error {
	slot = cmp.Or(slot, DefaultSlot)
	rows, err := ex.Query(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
		WHERE slot_name = $1 AND database = current_database()`, slot)
	if err != nil {
		return fmt.Errorf("pgwal: drop slot %s (stop its relay first): %w", slot, err)
	}
	n := 0
	for rows.Next() {
		n++
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return fmt.Errorf("pgwal: drop slot %s (stop its relay first): %w", slot, err)
	}
	if n == 0 {
		return fmt.Errorf("%w: %s", ErrNoSlot, slot)
	}
	return nil
}
