package cqrsynctesting

import (
	"database/sql"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync/internal/testenv"
)

// PostgresDatabase creates a database of its own on the test PostgreSQL
// server (CQRSYNC_POSTGRES_URL) and returns its URL, for tests of the WAL
// outbox: logical decoding messages and replication slots belong to a
// database, not a schema, so tests that stream them need a database each.
// When the test ends, the database's replication slots are dropped (a
// leftover slot would keep WAL on the shared server forever), then the
// database. Locally it skips the test if the server is down; under CI it
// fails.
func PostgresDatabase(tb testing.TB) string {
	tb.Helper()
	base := testenv.PostgresURL(tb)
	name := UniqueName("cqrsyncwal_")
	admin, err := sql.Open("pgx", base)
	if err != nil {
		tb.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.ExecContext(tb.Context(), "CREATE DATABASE "+name); err != nil {
		tb.Fatalf("create database: %v", err)
	}
	tb.Cleanup(func() { dropDatabase(tb, base, name) })
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// dropDatabase drops the slots of database name, ending the walsenders
// that stream them, then the database.
func dropDatabase(tb testing.TB, base, name string) {
	db, err := sql.Open("pgx", base)
	if err != nil {
		tb.Errorf("drop database %s: %v", name, err)
		return
	}
	defer db.Close()
	if _, err := db.Exec(`SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE database = $1 AND active_pid IS NOT NULL`, name); err != nil {
		tb.Errorf("drop database %s: end its walsenders: %v", name, err)
	}
	// A terminated walsender releases its slot a moment later.
	Eventually(tb, 30*time.Second, "the replication slots of "+name+" dropped (drop them by hand if not: they keep WAL)", func() bool {
		_, err := db.Exec(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1`, name)
		return err == nil
	})
	if _, err := db.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"); err != nil {
		tb.Errorf("drop database %s: %v", name, err)
	}
}

// LocalPostgres is a private PostgreSQL server a test starts, restarts and
// stops on its own (the shared server must never be restarted: other
// tests use it). It runs as the user postgres from a temporary directory,
// with wal_level = logical, on a free loopback port.
type LocalPostgres struct {
	// URL reaches the server's database "postgres" as the superuser
	// postgres (trust authentication).
	URL string

	tb   testing.TB
	bin  string
	dir  string
	data string
}

// StartPostgres initialises and starts a private PostgreSQL server,
// stopped and deleted when the test ends. It needs PostgreSQL's server
// binaries (/usr/lib/postgresql/<version>/bin) and runs them with runuser
// as the user postgres (so the test must run as root): without them it
// skips the test locally and fails it under CI.
func StartPostgres(tb testing.TB) *LocalPostgres {
	tb.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	_, runuserErr := exec.LookPath("runuser")
	if len(bins) == 0 || runuserErr != nil || os.Geteuid() != 0 {
		msg := "a private PostgreSQL needs /usr/lib/postgresql/*/bin/initdb, runuser and root (to run it as the user postgres); install postgresql or run as root"
		if testenv.InCI() {
			tb.Fatal(msg)
		}
		tb.Skip(msg)
	}
	sort.Strings(bins)
	p := &LocalPostgres{tb: tb, bin: filepath.Dir(bins[len(bins)-1])}
	dir, err := os.MkdirTemp("", "cqrsyncpg")
	if err != nil {
		tb.Fatal(err)
	}
	p.dir, p.data = dir, filepath.Join(dir, "data")
	tb.Cleanup(func() {
		_ = p.pgctl("stop", "-m", "immediate")
		_ = os.RemoveAll(dir)
	})
	if out, err := exec.Command("chown", "postgres:postgres", dir).CombinedOutput(); err != nil {
		tb.Fatalf("chown %s: %v\n%s", dir, err, out)
	}
	if err := p.runAsPostgres("initdb", "-D", p.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"); err != nil {
		tb.Fatal(err)
	}
	port := freePort(tb)
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c wal_level=logical -c max_wal_senders=8 -c max_replication_slots=8 -c fsync=off -c shared_buffers=16MB -c max_connections=40", port, dir)
	if err := p.pgctl("start", "-o", opts, "-l", filepath.Join(dir, "log")); err != nil {
		tb.Fatal(err)
	}
	p.URL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	return p
}

// Restart stops the server (fast: it ends every connection, as a
// `pg_ctlcluster … restart` does) and starts it again, waiting until it
// accepts connections.
func (p *LocalPostgres) Restart() {
	p.tb.Helper()
	// -l again: pg_ctl restart does not remember it, and a server writing
	// to pg_ctl's output would keep the pipe open.
	if err := p.pgctl("restart", "-m", "fast", "-l", filepath.Join(p.dir, "log")); err != nil {
		p.tb.Fatal(err)
	}
}

// Log returns the server's log so far, for failure messages.
func (p *LocalPostgres) Log() string {
	b, _ := os.ReadFile(filepath.Join(p.dir, "log"))
	return string(b)
}

func (p *LocalPostgres) pgctl(args ...string) error {
	return p.runAsPostgres("pg_ctl", append([]string{"-D", p.data, "-w", "-t", "60"}, args...)...)
}

func (p *LocalPostgres) runAsPostgres(prog string, args ...string) error {
	cmd := exec.Command("runuser", append([]string{"-u", "postgres", "--", filepath.Join(p.bin, prog)}, args...)...)
	cmd.Dir = p.dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %v: %v\n%s", prog, args, err, out)
	}
	return nil
}

// freePort returns a loopback TCP port nothing listens on now.
func freePort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	n, _ := strconv.Atoi(port)
	return n
}
