package cli_test

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/cli"
	"github.com/cqrsync/cqrsync/transport"
)

func TestDeadLetters(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if err := b.broker.DeclareQueue(b.queue, "djpeer_basic", "djpeer_failing"); err != nil {
		t.Fatal(err)
	}
	// django-cqrs's captured dead letter, and one of another model that
	// cqrsync dead-lettered an hour ago.
	djangoBody := strings.TrimSuffix(b.vector(t, "cmd_cqrs_dead_letters_dump.txt"), "\n")
	basicBody := `{"signal_type":"SAVE","cqrs_id":"djpeer_basic","instance_data":{"id":9,"cqrs_revision":0,"cqrs_updated":"2024-01-01 00:00:00+00:00"},"previous_data":null,"instance_pk":9,"correlation_id":null,"retries":3,"expires":null,"meta":{}}`
	pub := b.broker.Publisher()
	defer pub.Close()
	dlq := transport.DeadLetterQueue(b.queue)
	basicAt := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339Nano)
	if err := pub.Publish(t.Context(), []transport.Message{
		{CQRSID: "djpeer_failing", Queue: dlq, Body: []byte(djangoBody)},
		{CQRSID: "djpeer_basic", Queue: dlq, Body: []byte(basicBody), Headers: map[string]string{
			cqrsync.HeaderDeadLetteredAt: basicAt,
		}},
	}); err != nil {
		t.Fatal(err)
	}

	r := run(t, b.replica, "", "dead-letters", "dump")
	r.ok(t)
	if r.out != djangoBody+"\n"+basicBody+"\n" || r.errOut != "" {
		t.Fatalf("dump: stdout %q, stderr %q", r.out, r.errOut)
	}
	r = run(t, b.replica, "", "dead-letters", "dump", "--cqrs-id", "djpeer_basic")
	if r.ok(t); r.out != basicBody+"\n" {
		t.Fatalf("dump --cqrs-id: %q", r.out)
	}
	r = run(t, b.replica, "", "dead-letters", "dump", "--older-than", "2h")
	if r.ok(t); r.out != djangoBody+"\n" { // django-cqrs's carry no time: old
		t.Fatalf("dump --older-than 2h: %q", r.out)
	}

	// --format jsonl: one JSON object per line with the reason and time.
	at := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339Nano)
	if err := pub.Publish(t.Context(), []transport.Message{{CQRSID: "djpeer_basic", Queue: dlq, IntoQueue: true, Body: []byte("not json\n\"x\""), Headers: map[string]string{
		cqrsync.HeaderDeadLetterReason: "cqrsync: malformed payload", cqrsync.HeaderDeadLetteredAt: at,
	}}}); err != nil {
		t.Fatal(err)
	}
	r = run(t, b.replica, "", "dead-letters", "dump", "--format", "jsonl")
	r.ok(t)
	wantJSONL := `{"cqrs_id":"djpeer_failing","reason":null,"dead_lettered_at":null,"body":` + djangoBody + "}\n" +
		`{"cqrs_id":"djpeer_basic","reason":null,"dead_lettered_at":"` + basicAt + `","body":` + basicBody + "}\n" +
		`{"cqrs_id":"djpeer_basic","reason":"cqrsync: malformed payload","dead_lettered_at":"` + at + `","body":"not json\n\"x\""}` + "\n"
	if r.out != wantJSONL || r.errOut != "" {
		t.Fatalf("dump --format jsonl: stdout\n%s\nwant\n%s\nstderr %q", r.out, wantJSONL, r.errOut)
	}
	r = run(t, b.replica, "", "dead-letters", "dump")
	if r.ok(t); r.out != djangoBody+"\n"+basicBody+"\n"+"not json\n\"x\"\n" {
		t.Fatalf("dump (raw, the default): %q", r.out)
	}
	r = run(t, b.replica, "", "dead-letters", "purge", "-c", "djpeer_basic")
	r.ok(t)
	if err := pub.Publish(t.Context(), []transport.Message{{CQRSID: "djpeer_basic", Queue: dlq, Body: []byte(basicBody)}}); err != nil {
		t.Fatal(err)
	}

	r = run(t, b.replica, "", "dead-letters", "retry", "--cqrs-id", "djpeer_failing", "--dry-run")
	r.ok(t)
	if r.out != "Total dead letters: 1\nWould retry: 1/1\n"+djangoBody+"\nDry run: would send 1 dead letter(s) back to queue djpeer_replica; nothing was changed.\n" {
		t.Fatalf("retry --dry-run: %q", r.out)
	}

	// retry prints django-cqrs's lines, with retries reset and a fresh expiry.
	r = run(t, b.replica, "", "dead-letters", "retry", "-c", "djpeer_failing")
	r.ok(t)
	want := regexp.MustCompile(`^Total dead letters: 1\nRetrying: 1/1\n` +
		regexp.QuoteMeta(`{"signal_type":"SAVE","cqrs_id":"djpeer_failing","instance_data":{"id":1,"cqrs_revision":0,"cqrs_updated":"2026-11-23 15:04:29.935803+00:00","name":"case:failing_create"},"previous_data":null,"instance_pk":1,"correlation_id":null,"retries":0,"expires":"`) +
		`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00","meta":\{\}\}\n$`)
	if !want.MatchString(r.out) || r.errOut != "" {
		t.Fatalf("retry: stdout %q, stderr %q", r.out, r.errOut)
	}
	if b.broker.QueueLen(b.queue) != 1 || b.broker.QueueLen(dlq) != 1 {
		t.Fatalf("after retry: queue %d, dead letters %d", b.broker.QueueLen(b.queue), b.broker.QueueLen(dlq))
	}

	r = run(t, b.replica, "", "dead-letters", "purge", "--dry-run")
	if r.ok(t); r.out != "Total dead letters: 1\nDry run: would purge 1 dead letter(s) from dead_letter_djpeer_replica; nothing was changed.\n" || b.broker.QueueLen(dlq) != 1 {
		t.Fatalf("purge --dry-run: %q", r.out)
	}
	r = run(t, b.replica, "", "dead-letters", "purge")
	if r.ok(t); r.out != "Total dead letters: 1\nPurged\n" || b.broker.QueueLen(dlq) != 0 {
		t.Fatalf("purge: %q", r.out)
	}
	r = run(t, b.replica, "", "dead-letters", "purge")
	if r.ok(t); r.out != "Total dead letters: 0\n" {
		t.Fatalf("purge of nothing: %q", r.out)
	}
	r = run(t, b.replica, "", "dead-letters", "retry")
	if r.ok(t); r.out != "Total dead letters: 0\n" {
		t.Fatalf("retry of nothing: %q", r.out)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"dead-letters", "purge", "--older-than", "soon"}, `--older-than "soon": want a duration`},
		{[]string{"dead-letters", "dump", "-c", "a.b"}, `--cqrs-id "a.b" is not a CQRS ID`},
		{[]string{"dead-letters", "dump", "--format", "csv"}, `--format "csv": want raw or jsonl`},
		{[]string{"dead-letters", "retry", "-q", "a b"}, `--queue "a b" is not a queue name`},
	} {
		run(t, b.replica, "", c.args...).fails(t, cli.ExitUsage, c.want)
	}
}

func TestConsumeFailures(t *testing.T) {
	t.Parallel()
	b := setup(t)
	cases := []struct {
		name string
		opts *cli.Options
		args []string
		code int
		want string
	}{
		{"zero workers", b.replica, []string{"consume", "-w", "0"}, cli.ExitUsage, "--workers must be at least 1"},
		{"unknown model", b.replica, []string{"consume", "--cqrs-id", "djpeer_basic,nope"}, cli.ExitUsage, `--cqrs-id "nope" is not a replica model here`},
		{"not a replica", b.master, []string{"consume"}, cli.ExitUsage, "consume needs replica models and the replica queue name, and the setup has none"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			run(t, c.opts, "", c.args...).fails(t, c.code, c.want)
		})
	}
}

func TestDiffStreamErrors(t *testing.T) {
	t.Parallel()
	b := setup(t)
	cases := []struct {
		name, stdin string
		opts        *cli.Options
		args        []string
		code        int
		want        string
	}{
		{"empty stream", "", b.replica, []string{"diff-replica"}, cli.ExitFailure, "bad diff stream: the input is empty"},
		{"not a header", "hello\n", b.master, []string{"diff-sync"}, cli.ExitFailure, `first line "hello" is not "<cqrs_id>,<datetime>"`},
		{"unknown model", "nope,2024-01-01 00:00:00+00:00,q\n[1]\n", b.master, []string{"diff-sync"}, cli.ExitFailure, `the stream is about "nope", which is not a master model here`},
		{"bad line", "djpeer_basic,2024-01-01 00:00:00+00:00\n[[1,0]\n", b.replica, []string{"diff-replica"}, cli.ExitFailure, "line 2 is not a JSON list"},
		{"bad keys", "djpeer_basic,2024-01-01 00:00:00+00:00,q\n{}\n", b.master, []string{"diff-sync", "--dry-run"}, cli.ExitFailure, "line 2 is not a JSON list of keys"},
		{"unknown replica model", "nope,2024-01-01 00:00:00+00:00\n[1]\n", b.replica, []string{"deleted-sync-replica"}, cli.ExitFailure, `unknown cqrs_id "nope"`},
		{"diff-master without model", "", b.master, []string{"diff-master"}, cli.ExitUsage, "--cqrs-id is required"},
		{"deleted-diff-replica wrong side", "", b.replica, []string{"deleted-diff-replica", "-c", "account"}, cli.ExitUsage, `--cqrs-id "account" is not a replica model here`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			run(t, c.opts, c.stdin, c.args...).fails(t, c.code, c.want)
		})
	}
}
