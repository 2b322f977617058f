package cli_test

import (
	"strings"
	"testing"

	"github.com/cqrsync/cqrsync/cli"
)

// TestSchemaAndCheck: the master's schema document, piped into the
// replica's check: a matching replica exits 0; a master that sends a
// datetime where the replica stores an integer, and a model the replica
// does not read, are reported, and the check exits 1.
func TestSchemaAndCheck(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := run(t, b.master, "", "schema")
	r.ok(t)
	if !strings.Contains(r.out, `"cqrs_id": "djpeer_basic"`) || !strings.Contains(r.out, `"name": "decimal_field",`+"\n"+`          "type": "decimal"`) {
		t.Fatalf("schema:\n%s", r.out)
	}
	doc := r.out
	r = run(t, b.replica, doc, "check", "--schema", "-")
	r.ok(t)
	if r.out != "" {
		t.Fatalf("check of a matching replica: %q", r.out)
	}

	changed := strings.Replace(doc, `"name": "int_field",`+"\n"+`          "type": "int"`, `"name": "int_field",`+"\n"+`          "type": "datetime"`, 1)
	changed = strings.Replace(changed, `"models": [`, `"models": [{"cqrs_id": "invoice", "pk": "id", "fields": []},`, 1)
	if changed == doc {
		t.Fatal("the test's edit of the document did not apply")
	}
	r = run(t, b.replica, changed, "check", "--schema", "-")
	r.fails(t, cli.ExitFailure, "1 finding(s) refused, cut or dropped")
	want := "refused: djpeer_basic.int_field: master INTEGER (datetime) into replica INTEGER (int): the value cannot be converted, every event fails (change the column's type)\n" +
		"unread: invoice: the master publishes the model, and this replica does not register it: its events are dropped\n"
	if r.out != want {
		t.Fatalf("check stdout:\n%s\nwant:\n%s", r.out, want)
	}

	run(t, b.replica, "", "check").fails(t, cli.ExitUsage, "--schema is required")
	run(t, b.replica, `{"version": 9}`, "check", "--schema", "-").fails(t, cli.ExitUsage, "version 9")
	run(t, b.master, "", "schema", "-c", "nope").fails(t, cli.ExitUsage, `--cqrs-id "nope" is not a master model here`)
}
