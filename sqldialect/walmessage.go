package sqldialect

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// WALMessagePrefix is the prefix of the logical decoding messages that
// [Dialect.EmitOutbox] writes (pg_logical_emit_message(true, 'cqrsync', …)):
// a WAL relay (package outbox/pgwal) publishes the messages with this
// prefix and skips all others.
const WALMessagePrefix = "cqrsync"

// walMessageVersion is the first byte of every event message: a relay that
// meets another version refuses it rather than publish something it
// misreads. walRetraction is the first byte of a retraction.
const (
	walMessageVersion = 1
	walRetraction     = 0x80
)

// AppendWALRetraction appends the message that cancels the event written
// at position lsn in the same transaction (see Dialect.RetractWALMessage).
func AppendWALRetraction(dst []byte, lsn int64) []byte {
	return binary.BigEndian.AppendUint64(append(dst, walRetraction), uint64(lsn))
}

// WALRetraction reports whether b is a retraction, and the position of
// the event it cancels.
func WALRetraction(b []byte) (lsn int64, ok bool) {
	if len(b) != 9 || b[0] != walRetraction {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(b[1:])), true
}

func (d *standard) RetractWALMessage(ctx context.Context, ex Executor, lsn int64) error {
	if d.name != "postgres" {
		return fmt.Errorf("sqldialect: %s has no write-ahead log capture: %w", d.name, errors.ErrUnsupported)
	}
	return execDeferred(ctx, ex, "SELECT pg_logical_emit_message(true, '"+WALMessagePrefix+"', $1::bytea)", AppendWALRetraction(nil, lsn))
}

// ErrBadWALMessage is wrapped by ParseWALMessage for content it cannot
// read.
var ErrBadWALMessage = errors.New("sqldialect: bad cqrsync WAL message")

// AppendWALMessage appends the WAL message that carries row (its CQRSID,
// Queue, Headers, CreatedAt and Body; not its ID) to dst. The encoding is
// cqrsync's own: a version byte, the cqrs_id, queue and headers (a JSON
// object, or nothing) each prefixed with its length as a uvarint, the
// creation time in microseconds as a varint, then the body as it is.
func AppendWALMessage(dst []byte, row *OutboxRow) []byte {
	dst = append(dst, walMessageVersion)
	dst = appendString(dst, row.CQRSID)
	dst = appendString(dst, row.Queue)
	var headers []byte
	if len(row.Headers) > 0 {
		headers, _ = json.Marshal(row.Headers) // a map of strings always encodes
	}
	dst = binary.AppendUvarint(dst, uint64(len(headers)))
	dst = append(dst, headers...)
	dst = binary.AppendVarint(dst, micros(row.CreatedAt))
	return append(dst, row.Body...)
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// ParseWALMessage reads a message written by AppendWALMessage. The row's
// Body is a copy: b may be reused.
func ParseWALMessage(b []byte) (OutboxRow, error) {
	var row OutboxRow
	if len(b) == 0 || b[0] != walMessageVersion {
		return row, fmt.Errorf("%w: unknown version (want %d): was it written by a newer cqrsync?", ErrBadWALMessage, walMessageVersion)
	}
	b = b[1:]
	var fields [3][]byte
	for i := range fields {
		n, used := binary.Uvarint(b)
		if used <= 0 || uint64(len(b)-used) < n {
			return row, fmt.Errorf("%w: truncated", ErrBadWALMessage)
		}
		fields[i], b = b[used:used+int(n)], b[used+int(n):]
	}
	created, used := binary.Varint(b)
	if used <= 0 {
		return row, fmt.Errorf("%w: truncated", ErrBadWALMessage)
	}
	row.CQRSID, row.Queue = string(fields[0]), string(fields[1])
	if len(fields[2]) > 0 {
		if err := json.Unmarshal(fields[2], &row.Headers); err != nil {
			return row, fmt.Errorf("%w: headers: %w", ErrBadWALMessage, err)
		}
	}
	row.CreatedAt = time.UnixMicro(created).UTC()
	row.Body = append([]byte(nil), b[used:]...)
	return row, nil
}

// EmitOutbox writes rows as transactional logical decoding messages
// (PostgreSQL's pg_logical_emit_message(true, 'cqrsync', …)) instead of
// outbox rows: they are part of the caller's transaction, in the
// write-ahead log only, and decoded for a WAL relay when it commits (never,
// if it rolls back). One statement, deferred on a Deferrer (it then goes
// out with the next statement or the COMMIT). Databases other than
// PostgreSQL return an error wrapping [errors.ErrUnsupported].
func (d *standard) EmitOutbox(ctx context.Context, ex Executor, rows []OutboxRow) error {
	if d.name != "postgres" {
		return fmt.Errorf("sqldialect: %s has no write-ahead log capture (outbox: wal is PostgreSQL's): use the table outbox: %w", d.name, errors.ErrUnsupported)
	}
	if len(rows) == 0 {
		return nil
	}
	if len(rows) == 1 {
		return execDeferred(ctx, ex, "SELECT pg_logical_emit_message(true, '"+WALMessagePrefix+"', $1::bytea)", AppendWALMessage(nil, &rows[0]))
	}
	msgs := make([][]byte, len(rows))
	for i := range rows {
		msgs[i] = AppendWALMessage(nil, &rows[i])
	}
	// WITH ORDINALITY and ORDER BY: the messages enter the log in the
	// order of rows, which is the order the relay publishes them in.
	return execDeferred(ctx, ex, "SELECT count(pg_logical_emit_message(true, '"+WALMessagePrefix+"', m.b)) FROM (SELECT b FROM unnest($1::bytea[]) WITH ORDINALITY AS u(b, n) ORDER BY n) AS m", msgs)
}
