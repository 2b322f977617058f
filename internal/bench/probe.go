package bench

import (
	"cmp"
	"context"
	"database/sql"
	"database/sql/driver"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// How latency is measured on the replica side.
//
// Every create and update writes, besides commit_us (the writer's clock
// just before capture and commit), a probe value: probeBase plus the
// change's sequence number, unique in the run. The event carries it and the
// replica applies it like any column. The replica's *sql.DB is opened
// through probeConnector: its connections look at the arguments of every
// statement they run (plain or prepared, single-row or batched upserts
// alike, values or arrays of values) and remember the probe values they
// see, with the time. When that
// connection's transaction commits, the commit's return is the moment the
// rows became visible to other sessions, and the remembered probes are
// handed to the recorder with it; a rollback forgets them (the events are
// applied again later and seen then).
//
// This needs no hook on the replica model: hooks (OnSave/OnDelete) would
// take the model off the consumer's batched apply path.
//
// So each create and update gets three instants on one clock (this
// process's): the master's commit return (recorded by the writer), the
// apply statement, and the visibility (the apply transaction's commit
// return). Deletes carry no row, hence no probe; they are counted (the
// phase ends when the consumer settled every event) but not timed.

// probeBase marks probe values: 0x5A followed by 56 bits, of which the low
// 40 are the sequence number. No other argument of the replica's
// statements comes near (keys, revisions, microsecond timestamps are far
// smaller; texts are not integers).
const (
	probeBase = int64(0x5A) << 56
	probeMask = int64(1)<<40 - 1
)

func probeValue(seq int64) int64 { return probeBase | seq }

// probeSeq returns the sequence number of a probe value.
func probeSeq(v any) (int64, bool) {
	var n int64
	switch x := v.(type) {
	case int64:
		n = x
	case string:
		if len(x) != 19 || x[0] < '0' || x[0] > '9' {
			return 0, false
		}
		var err error
		if n, err = strconv.ParseInt(x, 10, 64); err != nil {
			return 0, false
		}
	case []byte:
		if len(x) != 19 {
			return 0, false
		}
		return probeSeq(string(x))
	default:
		return 0, false
	}
	if n&^probeMask != probeBase {
		return 0, false
	}
	return n & probeMask, true
}

// mark is one probe seen in a transaction not yet committed.
type mark struct {
	seq     int64
	applied int64 // when the statement ran (Unix ns)
}

// openProbed opens dsn with the named driver, through probe connections
// that report applied events to rec (when not nil) and time statements
// into st.
func openProbed(driverName, dsn string, rec *recorder, st *stmtStats) (*sql.DB, error) {
	tmp, err := sql.Open(driverName, dsn)
	if err != nil {
		return nil, err
	}
	drv := tmp.Driver()
	_ = tmp.Close()
	var inner driver.Connector
	if dc, ok := drv.(driver.DriverContext); ok {
		if inner, err = dc.OpenConnector(dsn); err != nil {
			return nil, err
		}
	} else {
		inner = dsnConnector{drv: drv, dsn: dsn}
	}
	return sql.OpenDB(&probeConnector{inner: inner, rec: rec, st: st}), nil
}

type dsnConnector struct {
	drv driver.Driver
	dsn string
}

func (c dsnConnector) Connect(context.Context) (driver.Conn, error) { return c.drv.Open(c.dsn) }
func (c dsnConnector) Driver() driver.Driver                        { return c.drv }

type probeConnector struct {
	inner driver.Connector
	rec   *recorder
	st    *stmtStats
}

func (c *probeConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.inner.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &probeConn{inner: conn, rec: c.rec, st: c.st}, nil
}

func (c *probeConnector) Driver() driver.Driver { return c.inner.Driver() }

// probeConn forwards everything to the driver's connection, except
// markQuery. database/sql uses a connection from one goroutine at a time,
// so pending needs no lock.
type probeConn struct {
	inner   driver.Conn
	rec     *recorder
	st      *stmtStats
	pending []mark
}

var (
	_ driver.ExecerContext      = (*probeConn)(nil)
	_ driver.QueryerContext     = (*probeConn)(nil)
	_ driver.ConnPrepareContext = (*probeConn)(nil)
	_ driver.ConnBeginTx        = (*probeConn)(nil)
	_ driver.NamedValueChecker  = (*probeConn)(nil)
	_ driver.SessionResetter    = (*probeConn)(nil)
	_ driver.Validator          = (*probeConn)(nil)
	_ driver.Pinger             = (*probeConn)(nil)
)

func (c *probeConn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}
func (c *probeConn) Close() error { return c.inner.Close() }

//nolint:staticcheck // driver.Conn requires Begin; BeginTx is what database/sql calls.
func (c *probeConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

func (c *probeConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	var tx driver.Tx
	var err error
	defer c.st.time("BEGIN", time.Now())
	if b, ok := c.inner.(driver.ConnBeginTx); ok {
		tx, err = b.BeginTx(ctx, opts)
	} else {
		tx, err = c.inner.Begin() //nolint:staticcheck // fallback for old drivers
	}
	if err != nil {
		return nil, err
	}
	c.pending = c.pending[:0]
	return &probeTx{inner: tx, c: c}, nil
}

// see notes the probes among a statement's arguments.
func (c *probeConn) see(args []driver.NamedValue) {
	if c.rec == nil {
		return
	}
	for _, a := range args {
		c.pending = appendProbes(c.pending, a.Value)
	}
}

// appendProbes appends to marks the probes in a statement's argument v:
// a probe value, or an array of values (batched statements pass one per
// column).
func appendProbes(marks []mark, v any) []mark {
	var now int64
	add := func(v any) {
		if seq, ok := probeSeq(v); ok {
			if now == 0 {
				now = time.Now().UnixNano()
			}
			marks = append(marks, mark{seq: seq, applied: now})
		}
	}
	switch vs := v.(type) {
	case []any:
		for _, v := range vs {
			add(v)
		}
	case []int64:
		for _, v := range vs {
			add(v)
		}
	case []string:
		for _, v := range vs {
			add(v)
		}
	default:
		add(v)
	}
	return marks
}

func (c *probeConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	e, ok := c.inner.(driver.ExecerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	start := time.Now()
	res, err := e.ExecContext(ctx, query, args)
	if err != driver.ErrSkip { //nolint:errorlint // ErrSkip is returned bare, by contract
		c.st.time(query, start)
	}
	if err == nil {
		c.see(args)
	}
	return res, err
}

func (c *probeConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	q, ok := c.inner.(driver.QueryerContext)
	if !ok {
		return nil, driver.ErrSkip
	}
	start := time.Now()
	rows, err := q.QueryContext(ctx, query, args)
	if err != driver.ErrSkip { //nolint:errorlint // ErrSkip is returned bare, by contract
		c.st.time(query, start)
	}
	if err == nil {
		c.see(args)
	}
	return rows, err
}

func (c *probeConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	var st driver.Stmt
	var err error
	defer c.st.time("PREPARE", time.Now())
	if p, ok := c.inner.(driver.ConnPrepareContext); ok {
		st, err = p.PrepareContext(ctx, query)
	} else {
		st, err = c.inner.Prepare(query)
	}
	if err != nil {
		return nil, err
	}
	return &probeStmt{inner: st, c: c, query: query}, nil
}

// probeStmt sees the arguments of prepared statements (go-sql-driver/mysql
// prepares every statement with arguments).
type probeStmt struct {
	inner driver.Stmt
	c     *probeConn
	query string
}

var (
	_ driver.StmtExecContext   = (*probeStmt)(nil)
	_ driver.StmtQueryContext  = (*probeStmt)(nil)
	_ driver.NamedValueChecker = (*probeStmt)(nil)
	_ driver.ColumnConverter   = (*probeStmt)(nil) //nolint:staticcheck // forwarded for drivers that have it
)

func (s *probeStmt) Close() error  { return s.inner.Close() }
func (s *probeStmt) NumInput() int { return s.inner.NumInput() }

//nolint:staticcheck // driver.Stmt requires Exec; database/sql calls ExecContext.
func (s *probeStmt) Exec(args []driver.Value) (driver.Result, error) {
	return s.inner.Exec(args) //nolint:staticcheck // see above
}

//nolint:staticcheck // driver.Stmt requires Query; database/sql calls QueryContext.
func (s *probeStmt) Query(args []driver.Value) (driver.Rows, error) {
	return s.inner.Query(args) //nolint:staticcheck // see above
}

func (s *probeStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	var res driver.Result
	var err error
	defer s.c.st.time(s.query, time.Now())
	if e, ok := s.inner.(driver.StmtExecContext); ok {
		res, err = e.ExecContext(ctx, args)
	} else {
		res, err = s.inner.Exec(namedToValues(args)) //nolint:staticcheck // old drivers
	}
	if err == nil {
		s.c.see(args)
	}
	return res, err
}

func (s *probeStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	var rows driver.Rows
	var err error
	defer s.c.st.time(s.query, time.Now())
	if q, ok := s.inner.(driver.StmtQueryContext); ok {
		rows, err = q.QueryContext(ctx, args)
	} else {
		rows, err = s.inner.Query(namedToValues(args)) //nolint:staticcheck // old drivers
	}
	if err == nil {
		s.c.see(args)
	}
	return rows, err
}

func (s *probeStmt) CheckNamedValue(nv *driver.NamedValue) error {
	if ch, ok := s.inner.(driver.NamedValueChecker); ok {
		return ch.CheckNamedValue(nv)
	}
	return s.c.CheckNamedValue(nv)
}

//nolint:staticcheck // forwarded for drivers that still implement it
func (s *probeStmt) ColumnConverter(idx int) driver.ValueConverter {
	if cc, ok := s.inner.(driver.ColumnConverter); ok { //nolint:staticcheck // see above
		return cc.ColumnConverter(idx)
	}
	return driver.DefaultParameterConverter
}

func namedToValues(args []driver.NamedValue) []driver.Value {
	out := make([]driver.Value, len(args))
	for i, a := range args {
		out[i] = a.Value
	}
	return out
}

func (c *probeConn) CheckNamedValue(nv *driver.NamedValue) error {
	if ch, ok := c.inner.(driver.NamedValueChecker); ok {
		return ch.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}

func (c *probeConn) ResetSession(ctx context.Context) error {
	if r, ok := c.inner.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (c *probeConn) IsValid() bool {
	if v, ok := c.inner.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

func (c *probeConn) Ping(ctx context.Context) error {
	if p, ok := c.inner.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

type probeTx struct {
	inner driver.Tx
	c     *probeConn
}

func (t *probeTx) Commit() error {
	start := time.Now()
	err := t.inner.Commit()
	now := time.Now()
	t.c.st.time("COMMIT", start)
	if err == nil && t.c.rec != nil {
		t.c.rec.visibleAt(t.c.pending, now.UnixNano())
	}
	t.c.pending = t.c.pending[:0]
	return err
}

func (t *probeTx) Rollback() error {
	t.c.pending = t.c.pending[:0]
	defer t.c.st.time("ROLLBACK", time.Now())
	return t.inner.Rollback()
}

// recorder collects the events of one phase: the master's commits and the
// replica's observations.
type recorder struct {
	mu sync.Mutex
	// base is the first sequence number of the phase; the slices are
	// indexed by seq - base.
	base      int64
	committed []int64 // master commit return, Unix ns (0: not yet)
	stamp     []int64 // commit_us written in the row
	applied   []int64 // replica statement time, Unix ns
	visible   []int64 // replica commit return, Unix ns
	events    int64   // events committed, deletes included
	probes    int     // probes committed
	seen      int     // probes both committed and visible
	applyTxs  int64   // replica transactions that made probes visible
	applyRows int64   // probes they made visible (redeliveries included)
}

func newRecorder() *recorder { return &recorder{} }

// reset starts a new phase whose first sequence number is base.
func (r *recorder) reset(base int64, size int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.base = base
	r.committed = make([]int64, 0, size)
	r.stamp = make([]int64, 0, size)
	r.applied = make([]int64, 0, size)
	r.visible = make([]int64, 0, size)
	r.events = 0
	r.probes = 0
	r.seen = 0
	r.applyTxs = 0
	r.applyRows = 0
}

// grow makes index i valid.
func (r *recorder) grow(i int) {
	for len(r.committed) <= i {
		r.committed = append(r.committed, 0)
		r.stamp = append(r.stamp, 0)
		r.applied = append(r.applied, 0)
		r.visible = append(r.visible, 0)
	}
}

// probe is a create or update in a master transaction: its sequence
// number and the commit_us it wrote.
type probe struct{ seq, stampUS int64 }

// commit records a master transaction's commit, returned at at, with its
// probes and its number of events.
func (r *recorder) commit(probes []probe, events int, at int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events += int64(events)
	for _, p := range probes {
		i := int(p.seq - r.base)
		if i < 0 {
			continue
		}
		r.grow(i)
		if r.committed[i] == 0 {
			r.probes++
		}
		r.committed[i] = at
		r.stamp[i] = p.stampUS
		if r.visible[i] != 0 {
			r.seen++ // the replica was quicker than the writer's bookkeeping
		}
	}
}

// visibleAt records probes made visible on the replica at time at.
func (r *recorder) visibleAt(marks []mark, at int64) {
	if len(marks) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.applyTxs++
	r.applyRows += int64(len(marks))
	for _, m := range marks {
		i := int(m.seq - r.base)
		if i < 0 {
			continue // an earlier phase's event, applied again
		}
		r.grow(i)
		if r.visible[i] != 0 {
			continue // applied again (a redelivery): the first one counts
		}
		r.visible[i] = at
		r.applied[i] = m.applied
		if r.committed[i] != 0 {
			r.seen++
		}
	}
}

// progress returns the probes seen on the replica, the probes committed,
// and the events committed (deletes included).
func (r *recorder) progress() (seen, probes int, events int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen, r.probes, r.events
}

// applyBatches returns the replica transactions that applied creates or
// updates in the phase, and the mean number they applied each.
func (r *recorder) applyBatches() (txs int64, mean float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.applyTxs == 0 {
		return 0, 0
	}
	return r.applyTxs, float64(r.applyRows) / float64(r.applyTxs)
}

// sample is one create's or update's timeline, in Unix ns.
type sample struct {
	committed, stamp, applied, visible int64
}

// samples returns the timelines of the committed probes seen so far, and
// the latest visibility among them.
func (r *recorder) samples() (out []sample, last int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out = make([]sample, 0, len(r.committed))
	for i, c := range r.committed {
		if c == 0 || r.visible[i] == 0 {
			continue
		}
		out = append(out, sample{committed: c, stamp: r.stamp[i] * 1000, applied: r.applied[i], visible: r.visible[i]})
		last = max(last, r.visible[i])
	}
	return out, last
}

// stmtStats times statements by kind: the first words of the statement,
// with whitespace collapsed. The figures are client-side wall time: the
// round trip plus the server's work, including lock waits.
type stmtStats struct {
	mu sync.Mutex
	m  map[string]*StmtStat
}

// StmtStat is the time spent in one kind of statement during a phase.
type StmtStat struct {
	Statement string  `json:"statement"`
	Count     int64   `json:"count"`
	TotalMS   float64 `json:"total_ms"`
	MeanUS    float64 `json:"mean_us"`
	total     time.Duration
}

func newStmtStats() *stmtStats { return &stmtStats{m: map[string]*StmtStat{}} }

func (s *stmtStats) time(query string, start time.Time) {
	if s != nil {
		s.timeKind(stmtKind(query), start)
	}
}

// timeKind counts a statement (or a pipeline) of kind k that started at
// start and just ended.
func (s *stmtStats) timeKind(k string, start time.Time) {
	if s == nil {
		return
	}
	d := time.Since(start)
	s.mu.Lock()
	st := s.m[k]
	if st == nil {
		st = &StmtStat{Statement: k}
		s.m[k] = st
	}
	st.Count++
	st.total += d
	s.mu.Unlock()
}

// reset forgets everything, for a new phase.
func (s *stmtStats) reset() {
	s.mu.Lock()
	s.m = map[string]*StmtStat{}
	s.mu.Unlock()
}

// top returns the n kinds of statement that took the most time.
func (s *stmtStats) top(n int) []StmtStat {
	s.mu.Lock()
	out := make([]StmtStat, 0, len(s.m))
	for _, st := range s.m {
		c := *st
		c.TotalMS = math.Round(float64(c.total.Microseconds())/10) / 100
		c.MeanUS = math.Round(float64(c.total.Microseconds()) / float64(c.Count))
		out = append(out, c)
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b StmtStat) int { return cmp.Compare(b.total, a.total) })
	return out[:min(n, len(out))]
}

// stmtKind names a statement by its first words (up to 64 characters),
// quotes dropped and whitespace collapsed, so that the same statement
// with more or fewer parameters is one kind.
func stmtKind(q string) string {
	var b strings.Builder
	space := false
	for _, r := range q {
		switch {
		case r == '"' || r == '`':
			continue
		case r == ' ' || r == '\n' || r == '\t' || r == '\r':
			space = b.Len() > 0
			continue
		case r == '(' || r == '$' || r == '?':
			// Stop at the first parameter list or placeholder.
			if b.Len() > 0 {
				return b.String()
			}
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(r)
		if b.Len() >= 64 {
			break
		}
	}
	return b.String()
}
