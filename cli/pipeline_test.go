package cli_test

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestVectorStreams runs the commands on django-cqrs's captured streams and
// compares their stdout and stderr with django-cqrs's, byte for byte.
func TestVectorStreams(t *testing.T) {
	t.Parallel()
	b := setup(t)
	dump := b.vector(t, "cmd_cqrs_bulk_dump_basic.dump")

	// cqrs_bulk_load: "Done!\n22 instance(s) loaded.\n" on stderr, nothing on stdout.
	r := run(t, b.replica, dump, "bulk-load", "-i", "-")
	r.ok(t)
	if r.out != "" || r.errOut != "Done!\n22 instance(s) loaded.\n" {
		t.Fatalf("bulk-load: stdout %q, stderr %q", r.out, r.errOut)
	}

	// cqrs_bulk_dump -o -: the dump on stdout, the summary on stderr.
	b.loadMaster(t)
	r = run(t, b.master, "", "bulk-dump", "--cqrs-id", "djpeer_basic", "-o", "-", "--batch", "4")
	r.ok(t)
	if r.out != dump {
		t.Fatalf("bulk-dump stdout differs from django-cqrs's dump:\n%s", firstDiff(r.out, dump))
	}
	if want := b.vector(t, "cmd_cqrs_bulk_dump_basic_stderr.txt"); r.errOut != want {
		t.Fatalf("bulk-dump stderr = %q, want %q", r.errOut, want)
	}

	// cqrs_diff_master --batch 5: same lines after the header.
	r = run(t, b.master, "", "diff-master", "-c", "djpeer_basic", "--batch", "5")
	r.ok(t)
	want := b.vector(t, "cmd_cqrs_diff_master.txt")
	gotHeader, gotBody, _ := strings.Cut(r.out, "\n")
	_, wantBody, _ := strings.Cut(want, "\n")
	if !regexp.MustCompile(`^djpeer_basic,\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{6})?\+00:00$`).MatchString(gotHeader) || gotBody != wantBody || r.errOut != "" {
		t.Fatalf("diff-master:\n%s\nwant (after the header):\n%s\nstderr %q", r.out, wantBody, r.errOut)
	}

	// The drift of cmd_diff_flow.json: pk 5 one revision behind, pk 1
	// missing, pk 999999 only on the replica.
	for _, q := range []string{
		`UPDATE djpeer_basic SET cqrs_revision = cqrs_revision - 1 WHERE id = 5`,
		`DELETE FROM djpeer_basic WHERE id = 1`,
		`INSERT INTO djpeer_basic (id, cqrs_revision, cqrs_updated, int_field, char_field, bool_field) VALUES (999999, 0, '2024-01-01 00:00:00+00:00', 0, 'replica-only', 0)`,
	} {
		if _, err := b.replicaDB.ExecContext(t.Context(), q); err != nil {
			t.Fatal(err)
		}
	}

	// cqrs_diff_replica < cmd_cqrs_diff_master.txt
	r = run(t, b.replica, want, "diff-replica")
	r.ok(t)
	if want := b.vector(t, "cmd_cqrs_diff_replica.txt"); r.out != want || r.errOut != "PK to resync: {1, 5}\n" {
		t.Fatalf("diff-replica: stdout %q (want %q), stderr %q", r.out, want, r.errOut)
	}

	// cqrs_deleted_diff_master < cmd_cqrs_deleted_diff_replica.txt
	r = run(t, b.master, b.vector(t, "cmd_cqrs_deleted_diff_replica.txt"), "deleted-diff-master")
	r.ok(t)
	if want := b.vector(t, "cmd_cqrs_deleted_diff_master.txt"); r.out != want || r.errOut != "PK to delete: [999999]\n" {
		t.Fatalf("deleted-diff-master: stdout %q (want %q), stderr %q", r.out, want, r.errOut)
	}

	// cqrs_deleted_diff_replica --batch 5: the replica's keys, 5 per line.
	r = run(t, b.replica, "", "deleted-diff-replica", "-c", "djpeer_basic", "-b", "5")
	r.ok(t)
	lines := strings.Split(strings.TrimSuffix(r.out, "\n"), "\n")
	if len(lines) != 6 || lines[1] != "[2,3,4,5,6]" || lines[5] != "[26,999999]" {
		t.Fatalf("deleted-diff-replica:\n%s", r.out)
	}

	// cqrs_deleted_sync_replica: deletes pk 999999, prints nothing.
	r = run(t, b.replica, b.vector(t, "cmd_cqrs_deleted_diff_master.txt"), "deleted-sync-replica", "--dry-run")
	r.ok(t)
	if !strings.Contains(r.out, "would delete up to 1 instance(s) of djpeer_basic") || count(t, b.replicaDB, "SELECT COUNT(*) FROM djpeer_basic WHERE id = 999999") != 1 {
		t.Fatalf("deleted-sync-replica --dry-run: %q", r.out)
	}
	r = run(t, b.replica, b.vector(t, "cmd_cqrs_deleted_diff_master.txt"), "deleted-sync-replica")
	r.ok(t)
	if r.out != "" || r.errOut != "" || count(t, b.replicaDB, "SELECT COUNT(*) FROM djpeer_basic WHERE id = 999999") != 0 {
		t.Fatalf("deleted-sync-replica: stdout %q, stderr %q", r.out, r.errOut)
	}
}

// TestRepairPipeline is the round trip on SQLite and the memory
// broker: dump, load into an empty replica, diff reports nothing; then drift
// on the replica, and the two repair pipelines, with a consumer running,
// bring it back to equal.
func TestRepairPipeline(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.loadMaster(t)
	dump := run(t, b.master, "", "bulk-dump", "-c", "djpeer_basic", "-o", "-")
	dump.ok(t)
	run(t, b.replica, dump.out, "bulk-load", "-i", "-").ok(t)
	diff := func() string {
		m := run(t, b.master, "", "diff-master", "-c", "djpeer_basic", "-b", "100")
		m.ok(t)
		r := run(t, b.replica, m.out, "diff-replica")
		r.ok(t)
		return r.out
	}
	if d := diff(); strings.Count(d, "\n") != 1 {
		t.Fatalf("diff after the load lists keys:\n%s", d)
	}

	// Drift: a changed row (other revision), a deleted row, an extra row.
	for _, q := range []string{
		`UPDATE djpeer_basic SET char_field = 'drifted', cqrs_revision = 7 WHERE id = 3`,
		`DELETE FROM djpeer_basic WHERE id = 10`,
		`INSERT INTO djpeer_basic (id, cqrs_revision, cqrs_updated, int_field, char_field, bool_field) VALUES (424242, 0, '2024-01-01 00:00:00+00:00', 0, 'extra', 0)`,
	} {
		if _, err := b.replicaDB.ExecContext(t.Context(), q); err != nil {
			t.Fatal(err)
		}
	}
	consumer := start(t, b.replica, "consume", "-w", "2")
	consumer.waitFor(t, "consuming queue djpeer_replica (djpeer_basic) with 2 worker(s)")

	resync := diff()
	if !strings.HasSuffix(resync, "\n[3,10]\n") {
		t.Fatalf("diff-replica:\n%s", resync)
	}
	r := run(t, b.master, resync, "diff-sync", "--dry-run")
	r.ok(t)
	if !strings.Contains(r.out, "Dry run: would sync up to 2 instance(s) of djpeer_basic to queue djpeer_replica: [3,10]") {
		t.Fatalf("diff-sync --dry-run: %q", r.out)
	}
	r = run(t, b.master, resync, "diff-sync")
	r.ok(t)
	if r.out != "Done!\n2 instance(s) synced.\n2 instance(s) processed.\n" {
		t.Fatalf("diff-sync: stdout %q, stderr %q", r.out, r.errOut)
	}
	if n := count(t, b.masterDB, "SELECT COUNT(*) FROM cqrs_outbox"); n != 0 {
		t.Fatalf("diff-sync left %d events in the outbox", n)
	}

	keys := run(t, b.replica, "", "deleted-diff-replica", "-c", "djpeer_basic", "-b", "4")
	keys.ok(t)
	gone := run(t, b.master, keys.out, "deleted-diff-master")
	gone.ok(t)
	if !strings.HasSuffix(gone.out, "\n[424242]\n") || gone.errOut != "PK to delete: [424242]\n" {
		t.Fatalf("deleted-diff-master: %q, %q", gone.out, gone.errOut)
	}
	run(t, b.replica, gone.out, "deleted-sync-replica").ok(t)

	eventually(t, "the replica to equal the master", func() bool {
		return tableText(t, b.replicaDB, "djpeer_basic") == tableText(t, b.masterDB, "djpeer_basic")
	})
	if d := diff(); strings.Count(d, "\n") != 1 {
		t.Fatalf("diff after the repair lists keys:\n%s", d)
	}
	res := consumer.stop()
	res.ok(t)
	if !strings.Contains(res.errOut, "consumer stopped: 2 received, 2 applied") {
		t.Fatalf("consume stderr:\n%s", res.errOut)
	}
}

// firstDiff shows the first line where got and want differ.
func firstDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := range min(len(g), len(w)) {
		if g[i] != w[i] {
			return "line " + strconv.Itoa(i+1) + ":\n got " + g[i] + "\nwant " + w[i]
		}
	}
	return "got " + strconv.Itoa(len(g)) + " lines, want " + strconv.Itoa(len(w))
}
