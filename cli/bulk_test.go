package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cqrsync/cqrsync/cli"
)

func TestBulkDumpToFile(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.loadMaster(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "basic.dump")

	r := run(t, b.master, "", "bulk-dump", "-c", "djpeer_basic", "-o", path, "--progress")
	r.ok(t)
	got, err := os.ReadFile(path)
	if err != nil || string(got) != b.vector(t, "cmd_cqrs_bulk_dump_basic.dump") {
		t.Fatalf("dump file differs from django-cqrs's (%v)", err)
	}
	// --progress on a non-terminal prints complete lines, then the summary.
	if !strings.Contains(r.errOut, "bulk-dump djpeer_basic: 22/22 rows, ") || !strings.HasSuffix(r.errOut, "Done!\n22 instance(s) saved.\n22 instance(s) processed.\n") || r.out != "" {
		t.Fatalf("stdout %q, stderr %q", r.out, r.errOut)
	}

	// An existing file is refused, before anything is read.
	r = run(t, b.master, "", "bulk-dump", "-c", "djpeer_basic", "-o", path)
	r.fails(t, cli.ExitUsage, "output file "+path+" exists: pass --force")
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	run(t, b.master, "", "bulk-dump", "-c", "djpeer_basic", "-o", path, "--force", "-b", "3").ok(t)
	if got, _ := os.ReadFile(path); string(got) != b.vector(t, "cmd_cqrs_bulk_dump_basic.dump") {
		t.Fatal("--force did not replace the file")
	}

	// The default name is <cqrs_id>.dump, in the working directory: here,
	// a failing dump (the table is gone: a configuration error, exit 2) must
	// leave nothing behind.
	if _, err := b.masterDB.ExecContext(t.Context(), "ALTER TABLE djpeer_basic RENAME TO gone"); err != nil {
		t.Fatal(err)
	}
	failing := filepath.Join(dir, "failing.dump")
	r = run(t, b.master, "", "bulk-dump", "-c", "djpeer_basic", "-o", failing)
	r.fails(t, cli.ExitUsage, "bulk-dump: table djpeer_basic does not exist")
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("a failed dump left files behind: %v", entries)
	}
}

func TestBulkLoadBadLines(t *testing.T) {
	t.Parallel()
	b := setup(t)
	lines := strings.Split(b.vector(t, "cmd_cqrs_bulk_dump_basic.dump"), "\n")
	lines[3] = `{"id": 3, "cqrs_revision": 0, not json`                                // line 4
	lines[6] = `{"id":6,"cqrs_revision":0,"cqrs_updated":"2024-01-01 00:00:00+00:00"}` // line 7: misses required columns
	lines[len(lines)-1] = lines[len(lines)-1][:40]                                     // a truncated last line
	in := strings.Join(lines, "\n")

	r := run(t, b.replica, in, "bulk-load", "-i", "-", "--dry-run")
	r.ok(t)
	if count(t, b.replicaDB, "SELECT COUNT(*) FROM djpeer_basic") != 0 ||
		!strings.Contains(r.out, "Dry run: nothing was changed.\n22 line(s) read, 2 bad.\n20 row(s) are missing on the replica") ||
		!strings.Contains(r.errOut, "line 4: skipped") || !strings.Contains(r.errOut, "line 23: skipped") {
		t.Fatalf("dry run: stdout %q, stderr %q", r.out, r.errOut)
	}

	r = run(t, b.replica, in, "bulk-load", "-i", "-", "--batch", "5")
	if r.code != cli.ExitFailure {
		t.Fatalf("exit %d, want 1; stderr:\n%s", r.code, r.errOut)
	}
	errLines := strings.Split(strings.TrimSpace(r.errOut), "\n")
	want := []string{"line 4: skipped: ", "line 7: skipped: ", "line 23: skipped: ", "Done!", "19 instance(s) loaded.",
		"cqrsync: bulk-load: 3 bad line(s) skipped (listed above); the other 19 line(s) were applied"}
	if len(errLines) != len(want) {
		t.Fatalf("stderr:\n%s", r.errOut)
	}
	for i, w := range want {
		if !strings.HasPrefix(errLines[i], w) {
			t.Errorf("stderr line %d = %q, want %q…", i+1, errLines[i], w)
		}
	}
	if !strings.Contains(errLines[1], "int_field") {
		t.Errorf("line 7's reason does not name the missing column: %q", errLines[1])
	}
	if n := count(t, b.replicaDB, "SELECT COUNT(*) FROM djpeer_basic"); n != 19 {
		t.Fatalf("%d rows loaded, want 19", n)
	}
}

func TestBulkLoadClear(t *testing.T) {
	t.Parallel()
	b := setup(t)
	dump := b.vector(t, "cmd_cqrs_bulk_dump_basic.dump")
	if _, err := b.replicaDB.ExecContext(t.Context(), `INSERT INTO djpeer_basic (id, cqrs_revision, cqrs_updated, int_field, char_field, bool_field)
		VALUES (777, 0, '2024-01-01 00:00:00+00:00', 0, 'extra', 0), (5, 9, '2024-01-01 00:00:00+00:00', 0, 'newer', 0)`); err != nil {
		t.Fatal(err)
	}
	// --clear=false must not clear (django-cqrs's --clear False does).
	r := run(t, b.replica, dump, "bulk-load", "-i", "-", "--clear=false")
	r.ok(t)
	if r.errOut != "Done!\n21 instance(s) loaded.\n1 instance(s) unchanged (the replica holds them as new or newer).\n" ||
		count(t, b.replicaDB, "SELECT COUNT(*) FROM djpeer_basic") != 23 {
		t.Fatalf("stderr %q", r.errOut)
	}
	r = run(t, b.replica, dump, "bulk-load", "-i", "-", "--clear", "--dry-run")
	r.ok(t)
	if !strings.Contains(r.out, "--clear would delete the 23 row(s) of table djpeer_basic first; the load would then write the 22 good line(s).") ||
		count(t, b.replicaDB, "SELECT COUNT(*) FROM djpeer_basic") != 23 {
		t.Fatalf("dry run: %q", r.out)
	}
	r = run(t, b.replica, dump, "bulk-load", "-i", "-", "--clear")
	r.ok(t)
	if r.errOut != "Done!\n22 instance(s) loaded.\n" || count(t, b.replicaDB, "SELECT COUNT(*) FROM djpeer_basic WHERE id = 777 OR cqrs_revision = 9") != 0 {
		t.Fatalf("--clear: stderr %q", r.errOut)
	}
}

func TestBulkLoadInputErrors(t *testing.T) {
	t.Parallel()
	b := setup(t)
	dir := t.TempDir()
	other := filepath.Join(dir, "other.dump")
	if err := os.WriteFile(other, []byte("account\n{\"id\":1}"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, stdin string
		args        []string
		code        int
		want        string
	}{
		{"no input", "", []string{"bulk-load"}, cli.ExitUsage, "--input is required"},
		{"missing file", "", []string{"bulk-load", "-i", filepath.Join(dir, "nope.dump")}, cli.ExitFailure, "nope.dump does not exist"},
		{"empty", "", []string{"bulk-load", "-i", "-"}, cli.ExitFailure, "bad dump: stdin is empty"},
		{"other model", "", []string{"bulk-load", "-i", other}, cli.ExitFailure, `is a dump of "account", which is not a replica model here (registered: djpeer_basic)`},
		{"bad batch", "", []string{"bulk-load", "-i", other, "-b", "0"}, cli.ExitUsage, "--batch must be at least 1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			run(t, b.replica, c.stdin, c.args...).fails(t, c.code, c.want)
		})
	}
}

// TestBulkShortFlagsAsDjango: -f is --force for bulk-dump and -c is --clear
// for bulk-load, as in django-cqrs's cqrs_bulk_dump and cqrs_bulk_load.
func TestBulkShortFlagsAsDjango(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.loadMaster(t)
	path := filepath.Join(t.TempDir(), "basic.dump")
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	run(t, b.master, "", "bulk-dump", "-c", "djpeer_basic", "-o", path, "-f").ok(t)
	dump := b.vector(t, "cmd_cqrs_bulk_dump_basic.dump")
	if got, _ := os.ReadFile(path); string(got) != dump {
		t.Fatal("bulk-dump -f did not replace the file")
	}
	if _, err := b.replicaDB.ExecContext(t.Context(), `INSERT INTO djpeer_basic (id, cqrs_revision, cqrs_updated, int_field, char_field, bool_field)
		VALUES (777, 0, '2024-01-01 00:00:00+00:00', 0, 'extra', 0)`); err != nil {
		t.Fatal(err)
	}
	run(t, b.replica, dump, "bulk-load", "-i", "-", "-c").ok(t)
	if n := count(t, b.replicaDB, "SELECT COUNT(*) FROM djpeer_basic WHERE id = 777"); n != 0 {
		t.Fatal("bulk-load -c did not clear the table")
	}
}
