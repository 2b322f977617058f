package bench

import (
	"context"
	"database/sql"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
)

// On PostgreSQL the bench's probed replica pool is a pgxpool.Pool, and the
// consumer runs its transactions through the pgx driver (sqldialect/pgxv5),
// pipelined, past the database/sql driver interface that probeConn wraps. So there the same probing is done by a pgx tracer,
// which sees every statement a connection sends, alone or in a pipeline:
// it notes the probes among the arguments, times each round trip by the
// kinds of statement it carried, and hands a connection's probes to the
// recorder when a COMMIT on it succeeds.

// pgxProbe is a pgx tracer (pgx.QueryTracer and pgx.BatchTracer) shared by
// a pool's connections.
type pgxProbe struct {
	rec *recorder
	st  *stmtStats

	mu      sync.Mutex
	pending map[*pgx.Conn][]mark // a connection's probes since its BEGIN
}

var (
	_ pgx.QueryTracer = (*pgxProbe)(nil)
	_ pgx.BatchTracer = (*pgxProbe)(nil)
)

// openPgxProbed opens a pool of at most conns connections on dsn, traced
// by a pgxProbe, and a *sql.DB on that pool (closing it leaves the pool
// open).
func openPgxProbed(dsn string, conns int, rec *recorder, st *stmtStats) (*pgxpool.Pool, *sql.DB, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, nil, err
	}
	cfg.ConnConfig.Tracer = &pgxProbe{rec: rec, st: st, pending: map[*pgx.Conn][]mark{}}
	cfg.MaxConns = int32(conns) //nolint:gosec // a handful of workers
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, nil, err
	}
	return pool, stdlib.OpenDBFromPool(pool), nil
}

type pgxProbeKey struct{}

// roundTrip is what a tracer's start hands to its end through the context.
type roundTrip struct {
	start time.Time
	kind  string
	sql   string
}

func (p *pgxProbe) TraceQueryStart(ctx context.Context, conn *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	p.see(conn, data.SQL, data.Args)
	return context.WithValue(ctx, pgxProbeKey{}, &roundTrip{start: time.Now(), kind: stmtKind(data.SQL), sql: data.SQL})
}

func (p *pgxProbe) TraceQueryEnd(ctx context.Context, conn *pgx.Conn, data pgx.TraceQueryEndData) {
	rt, _ := ctx.Value(pgxProbeKey{}).(*roundTrip)
	if rt == nil {
		return
	}
	kind := rt.kind
	switch strings.ToUpper(kind) {
	case "BEGIN", "COMMIT", "ROLLBACK": // pgx's own transactions send them in lower case
		kind = strings.ToUpper(kind)
	}
	p.st.timeKind(kind, rt.start)
	p.ended(conn, rt.sql, data.CommandTag.String(), data.Err)
}

func (p *pgxProbe) TraceBatchStart(ctx context.Context, conn *pgx.Conn, data pgx.TraceBatchStartData) context.Context {
	kinds := make([]string, 0, len(data.Batch.QueuedQueries))
	for _, q := range data.Batch.QueuedQueries {
		p.see(conn, q.SQL, q.Arguments)
		kinds = append(kinds, stmtKind(q.SQL))
	}
	return context.WithValue(ctx, pgxProbeKey{}, &roundTrip{start: time.Now(), kind: "pipeline: " + strings.Join(kinds, " + ")})
}

func (p *pgxProbe) TraceBatchQuery(_ context.Context, conn *pgx.Conn, data pgx.TraceBatchQueryData) {
	p.ended(conn, data.SQL, data.CommandTag.String(), data.Err)
}

func (p *pgxProbe) TraceBatchEnd(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchEndData) {
	if rt, _ := ctx.Value(pgxProbeKey{}).(*roundTrip); rt != nil {
		p.st.timeKind(rt.kind, rt.start)
	}
}

// see notes the probes among a statement's arguments; a BEGIN starts the
// connection's transaction afresh.
func (p *pgxProbe) see(conn *pgx.Conn, sql string, args []any) {
	if p.rec == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	marks := p.pending[conn]
	if strings.EqualFold(sql, "begin") {
		marks = marks[:0]
	}
	for _, a := range args {
		marks = appendProbes(marks, a)
	}
	p.pending[conn] = marks
}

// ended handles a statement's result: a successful COMMIT makes the
// connection's probes visible now; a ROLLBACK, or a COMMIT that rolled
// back, forgets them.
func (p *pgxProbe) ended(conn *pgx.Conn, sql, tag string, err error) {
	if p.rec == nil {
		return
	}
	commit, rollback := strings.EqualFold(sql, "commit"), strings.EqualFold(sql, "rollback")
	if !commit && !rollback {
		return
	}
	now := time.Now().UnixNano()
	p.mu.Lock()
	marks := p.pending[conn]
	delete(p.pending, conn)
	p.mu.Unlock()
	if commit && err == nil && tag == "COMMIT" {
		p.rec.visibleAt(marks, now)
	}
}
