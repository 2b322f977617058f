package main_test

// These tests build the cqrsync binary once and run it as an operator
// would, against the real PostgreSQL, MariaDB, SQLite and RabbitMQ of the
// development machine (TESTING.md), including failures and their exit codes.

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"

	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/internal/testenv"
	"github.com/cqrsync/cqrsync/transport"
	"github.com/cqrsync/cqrsync/transport/rabbitmq"
)

// binary is the cqrsync binary built by TestMain.
var binary string

// waitTimeout bounds every wait for something that must happen.
const waitTimeout = 30 * time.Second

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "cqrsync-bin-*")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "cqrsync")
	build := exec.Command("go", "build", "-o", binary, ".")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build ./cmd/cqrsync: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	if code == 0 {
		// Connections the tests opened to set up and inspect must be closed.
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// result is what one run of the binary did.
type result struct {
	args        []string
	code        int
	out, errOut string
}

func (r result) ok(t *testing.T) {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("cqrsync %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.code, r.out, r.errOut)
	}
}

// fails checks a failure: the exit code and a stderr of one line naming
// want, that shows no password.
func (r result) fails(t *testing.T, code int, want string) {
	t.Helper()
	if r.code != code || !strings.Contains(r.errOut, want) || strings.Count(strings.TrimSpace(r.errOut), "\n") != 0 {
		t.Fatalf("cqrsync %s: exit %d, stderr %q; want exit %d and one line naming %q", strings.Join(r.args, " "), r.code, r.errOut, code, want)
	}
	if n := strings.Count(r.errOut, "cqrsync:"); n > 1 {
		t.Fatalf("cqrsync %s: stderr %q says \"cqrsync:\" %d times, want once", strings.Join(r.args, " "), r.errOut, n)
	}
	if strings.Contains(r.errOut+r.out, "hunter2") {
		t.Fatalf("cqrsync %s printed a password: %q", strings.Join(r.args, " "), r.errOut)
	}
}

// service is one service's working directory and configuration.
type service struct {
	dir string
	env []string
}

// newService writes config as cqrsync.yaml in a new directory.
func newService(t *testing.T, config string) *service {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "cqrsync.yaml"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	return &service{dir: dir}
}

// environ is the test's environment without cqrsync's variables, so that
// the developer's settings do not leak into the binary.
func (s *service) environ() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CQRSYNC_") {
			env = append(env, kv)
		}
	}
	return append(env, s.env...)
}

func (s *service) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Dir = s.dir
	cmd.Env = s.environ()
	return cmd
}

// run runs the binary in the service's directory with stdin.
func (s *service) run(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	cmd := s.command(ctx, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("cqrsync %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return result{args: args, code: code, out: out.String(), errOut: errOut.String()}
}

// shell runs a pipeline through bash, with $CQRSYNC set to the binary and
// pipefail on; it returns stdout and stderr.
func shell(t *testing.T, dir, script string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-o", "pipefail", "-c", script)
	cmd.Dir = dir
	cmd.Env = append((&service{}).environ(), "CQRSYNC="+binary)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	code := 0
	if err := cmd.Run(); err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatal(err)
		}
		code = ee.ExitCode()
	}
	return result{args: []string{script}, code: code, out: out.String(), errOut: errOut.String()}
}

// process is a long-running command (consume, relay).
type process struct {
	cmd    *exec.Cmd
	errOut *syncBuffer
	done   chan struct{}
	code   int
}

func (s *service) start(t *testing.T, args ...string) *process {
	t.Helper()
	cmd := s.command(context.Background(), args...)
	p := &process{cmd: cmd, errOut: new(syncBuffer), done: make(chan struct{})}
	cmd.Stderr = p.errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.done)
		_ = cmd.Wait()
		p.code = cmd.ProcessState.ExitCode()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
	})
	return p
}

func (p *process) waitFor(t *testing.T, text string) {
	t.Helper()
	if !p.errOut.WaitFor(text, waitTimeout, p.done) {
		t.Fatalf("%q never appeared on stderr:\n%s", text, p.errOut.String())
	}
}

// terminate sends SIGTERM and returns the exit code and stderr.
func (p *process) terminate(t *testing.T) (int, string) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(waitTimeout):
		t.Fatalf("no exit %v after SIGTERM:\n%s", waitTimeout, p.errOut.String())
	}
	return p.code, p.errOut.String()
}

// syncBuffer is the shared concurrent buffer that can wait for text.
type syncBuffer = cqrsynctesting.SyncBuffer

// eventually waits until cond holds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	cqrsynctesting.Eventually(t, waitTimeout, what, cond)
}

// postgres returns the URL of a schema of the test's own, and a handle on it.
func postgres(t *testing.T, ddl ...string) (string, *sql.DB) {
	t.Helper()
	dsn := cqrsynctesting.PostgresDSN(t)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	execSQL(t, db, ddl...)
	return dsn, db
}

// mariadb returns the mysql:// URL of a database of the test's own, and a
// handle on it.
func mariadb(t *testing.T, ddl ...string) (string, *sql.DB) {
	t.Helper()
	dsn := cqrsynctesting.MySQLDSN(t)
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	execSQL(t, db, ddl...)
	user := cfg.User
	if cfg.Passwd != "" {
		user += ":" + cfg.Passwd
	}
	return fmt.Sprintf("mysql://%s@%s/%s", user, cfg.Addr, cfg.DBName), db
}

func execSQL(t *testing.T, db *sql.DB, stmts ...string) {
	t.Helper()
	for _, q := range stmts {
		if _, err := db.ExecContext(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// broker gives the test an exchange and queue names of its own on RabbitMQ,
// deleted when it ends.
type broker struct {
	url, exchange string
	conn          *amqp.Connection
	mu            sync.Mutex
	queues        []string
}

func newBroker(t *testing.T) *broker {
	t.Helper()
	url := testenv.AMQPURL(t)
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	b := &broker{url: url, exchange: cqrsynctesting.UniqueName("cqrsynctest_"), conn: conn}
	t.Cleanup(func() {
		ch, err := conn.Channel()
		if err == nil {
			b.mu.Lock()
			for _, q := range b.queues {
				_, _ = ch.QueueDelete(q, false, false, false)
			}
			b.mu.Unlock()
			_ = ch.ExchangeDelete(b.exchange, false, false)
		}
		_ = conn.Close()
	})
	return b
}

// queue returns a new replica queue name, deleted (with its dead-letter
// queue) when the test ends.
func (b *broker) queue() string {
	q := cqrsynctesting.UniqueName("cqrsynctest_q")
	b.mu.Lock()
	b.queues = append(b.queues, q, "dead_letter_"+q)
	b.mu.Unlock()
	return q
}

// bind declares the replica queue and its bindings to cqrsIDs, as a
// consumer would.
func (b *broker) bind(t *testing.T, queue string, cqrsIDs ...string) {
	t.Helper()
	tr, err := rabbitmq.New(t.Context(), &rabbitmq.Config{URL: b.url, Exchange: b.exchange})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	sub, err := tr.Subscribe(ctx, &transport.SubscribeParams{Queue: queue, CQRSIDs: cqrsIDs, Prefetch: 1})
	if err != nil {
		t.Fatal(err)
	}
	_ = sub.Close()
}

// depth returns the number of ready messages in a queue.
func (b *broker) depth(t *testing.T, q string) int {
	t.Helper()
	ch, err := b.conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	st, err := ch.QueueDeclarePassive(q, true, false, false, false, nil)
	if err != nil {
		t.Fatalf("inspect queue %s: %v", q, err)
	}
	return st.Messages
}

// get takes one message from a queue, acknowledged.
func (b *broker) get(t *testing.T, q string) (routingKey, body string) {
	t.Helper()
	ch, err := b.conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	d, ok, err := ch.Get(q, true)
	if err != nil || !ok {
		t.Fatalf("get from %s: %v (message: %v)", q, err, ok)
	}
	return d.RoutingKey, string(d.Body)
}

// rows renders the result of a query, one line per row, with values
// normalised so that PostgreSQL and MariaDB compare.
func rows(t *testing.T, db *sql.DB, query string) string {
	t.Helper()
	rs, err := db.QueryContext(t.Context(), query)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	cols, _ := rs.Columns()
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var b strings.Builder
	for rs.Next() {
		if err := rs.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		for i, v := range vals {
			if i > 0 {
				b.WriteByte('|')
			}
			b.WriteString(normalise(v))
		}
		b.WriteByte('\n')
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func normalise(v any) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case []byte:
		return normalise(string(x))
	case string:
		var j any
		if strings.HasPrefix(x, "{") && json.Unmarshal([]byte(x), &j) == nil {
			b, _ := json.Marshal(j)
			return string(b)
		}
		return x
	case time.Time:
		return x.UTC().Format("2006-01-02T15:04:05.000000")
	case map[string]any, []any:
		b, _ := json.Marshal(x)
		return string(b)
	case bool:
		if x {
			return "1"
		}
		return "0"
	}
	return fmt.Sprint(v)
}

func copyFile(from, to string) error {
	data, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, data, 0o600)
}
