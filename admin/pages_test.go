package admin_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/cqrsync/cqrsync/admin"
	"github.com/cqrsync/cqrsync/transport"
)

func TestModelsAndFreshness(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	if _, err := b.masterDB.Exec(`INSERT INTO account (id, name, cqrs_updated) VALUES (1, 'a', '2026-01-02 03:04:05'), (2, 'b', '2026-01-02 03:04:06')`); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, b.srv.URL)
	c.login()
	_, _, page := c.do("GET", "/models", nil, nil)
	for _, want := range []string{"account_copy", "name → title", "id → id", "title → name", "every column"} {
		if !strings.Contains(page, want) {
			t.Errorf("models page lacks %q:\n%s", want, page)
		}
	}
	_, _, page = c.do("GET", "/freshness", nil, nil)
	for _, want := range []string{`data-side="master" data-cqrs-id="account"`, `<td class="rows">2</td>`, "2026-01-02 03:04:06 UTC", `<td class="rows">0</td>`, `<td class="behind">has no rows yet</td>`} {
		if !strings.Contains(page, want) {
			t.Errorf("freshness page lacks %q:\n%s", want, page)
		}
	}
	if _, err := b.replicaDB.Exec(`INSERT INTO account_copy (id, name, cqrs_updated) VALUES (1, 'a', '2026-01-02 03:04:05')`); err != nil {
		t.Fatal(err)
	}
	if _, _, page = c.do("GET", "/freshness?refresh=5", nil, nil); !strings.Contains(page, `<td class="behind">1s behind</td>`) {
		t.Errorf("freshness page does not say the replica is 1s behind:\n%s", page)
	}
	if !strings.Contains(page, `<meta http-equiv="refresh" content="5">`) {
		t.Errorf("?refresh=5 does not reload the page every 5 s:\n%s", page)
	}
}

func TestDeadLettersByReason(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	body := func(pk string) string {
		return `{"signal_type":"SAVE","cqrs_id":"account","instance_data":{"id":` + pk + `,"title":"x","cqrs_revision":0,"cqrs_updated":"2026-01-01T00:00:00+00:00"},"instance_pk":` + pk + `,"previous_data":null,"correlation_id":null,"retries":3,"expires":null}`
	}
	b.deadLetter(t, body("1"), "constraint failed")
	b.deadLetter(t, body("2"), "constraint failed")
	b.deadLetter(t, body("3"), "timeout")
	c := newClient(t, b.srv.URL)
	c.login()
	_, _, page := c.do("GET", "/dead-letters", nil, nil)
	if !strings.Contains(page, `<b id="dl-total">3</b>`) || !strings.Contains(page, "constraint failed</td><td>2</td>") {
		t.Fatalf("dead-letters page:\n%s", page)
	}
	_, _, page = c.do("GET", "/dead-letters?cqrs_id=account&reason=timeout", nil, nil)
	if !strings.Contains(page, `<span id="dl-matching">1</span>`) || !strings.Contains(page, `<td class="pk">3</td>`) {
		t.Fatalf("selected page:\n%s", page)
	}
	code, loc, _ := c.do("POST", "/dead-letters", url.Values{"csrf": {csrf(t, page)}, "action": {"retry"}, "cqrs_id": {"account"}, "reason": {"timeout"}}, nil)
	if code != http.StatusSeeOther {
		t.Fatalf("retry = %d", code)
	}
	if q, d := b.broker.QueueLen(b.queue), b.broker.QueueLen(transport.DeadLetterQueue(b.queue)); q != 1 || d != 2 {
		t.Fatalf("after retrying the timeout: queue %d, dead letters %d; want 1 and 2", q, d)
	}
	_, _, page = c.do("GET", loc, nil, nil)
	if !strings.Contains(page, `Sent 1 dead letters of account with reason &#34;timeout&#34; back to queue billing.`) {
		t.Fatalf("page after retry lacks the outcome:\n%s", page)
	}
	code, _, _ = c.do("POST", "/dead-letters", url.Values{"csrf": {csrf(t, page)}, "action": {"purge"}, "any_reason": {"1"}}, nil)
	if d := b.broker.QueueLen(transport.DeadLetterQueue(b.queue)); code != http.StatusSeeOther || d != 0 {
		t.Fatalf("purge all = %d, %d left; want 303 and 0", code, d)
	}
}

// appendOnly is a transport that browses dead letters but cannot remove
// them (a log-based broker).
type appendOnly struct{ transport.DeadLetters }

func (a appendOnly) Capabilities() transport.Capabilities {
	c := a.DeadLetters.Capabilities()
	c.DeadLetterRemove = false
	return c
}

func (a appendOnly) ScanDeadLetters(context.Context, string, func(context.Context, *transport.Message) (transport.DeadLetterAction, error)) (int, error) {
	panic("ScanDeadLetters called on a transport that declares no DeadLetterRemove")
}

func TestDeadLettersRespectCapabilities(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *admin.Config) { c.DeadLetters = appendOnly{c.DeadLetters} })
	b.deadLetter(t, `not json`, "malformed")
	c := newClient(t, b.srv.URL)
	c.login()
	_, _, page := c.do("GET", "/dead-letters?reason=malformed", nil, nil)
	if !strings.Contains(page, "cannot remove one") || !strings.Contains(page, `class="danger" disabled`) {
		t.Fatalf("page does not say that retry and purge are off:\n%s", page)
	}
	_, loc, _ := c.do("POST", "/dead-letters", url.Values{"csrf": {csrf(t, page)}, "action": {"purge"}, "any_reason": {"1"}}, nil)
	_, _, page = c.do("GET", loc, nil, nil)
	if !strings.Contains(page, "not supported") || b.broker.QueueLen(transport.DeadLetterQueue(b.queue)) != 1 {
		t.Fatalf("purge on an append-only transport was not refused:\n%s", page)
	}
}

func TestSyncByKeys(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	if _, err := b.masterDB.Exec(`INSERT INTO account (id, name) VALUES (1, 'a'), (2, 'b'), (3, 'c')`); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, b.srv.URL)
	c.login()
	_, _, page := c.do("GET", "/sync?cqrs_id=account&keys=1,+3&queue=billing&preview=1", nil, nil)
	if !strings.Contains(page, `<span id="sync-count">2</span>`) || !strings.Contains(page, `&#34;title&#34;:&#34;c&#34;`) {
		t.Fatalf("preview:\n%s", page)
	}
	_, _, bad := c.do("GET", "/sync?cqrs_id=account&filter=%7B%22nope__in%22%3A%5B1%5D%7D&preview=1", nil, nil)
	if !strings.Contains(bad, `id="sync-error"`) {
		t.Fatalf("preview of a bad filter shows no error:\n%s", bad)
	}
	code, loc, _ := c.do("POST", "/sync", url.Values{"csrf": {csrf(t, page)}, "cqrs_id": {"account"}, "keys": {"1, 3"}, "queue": {"billing"}}, nil)
	if code != http.StatusSeeOther {
		t.Fatalf("sync = %d", code)
	}
	_, _, page = c.do("GET", loc, nil, nil)
	if !strings.Contains(page, "Enqueued 2 SYNC event(s) of account for queue billing.") {
		t.Fatalf("page after sync:\n%s", page)
	}
	var n int
	if err := b.masterDB.QueryRow(`SELECT COUNT(*) FROM cqrs_outbox WHERE CAST(body AS TEXT) LIKE '%"signal_type":"SYNC"%' AND queue = 'billing'`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("SYNCs in the outbox = %d, %v; want 2", n, err)
	}
	_, _, page = c.do("GET", "/outbox", nil, nil)
	if !strings.Contains(page, `<span class="big" id="backlog-rows">2</span>`) {
		t.Fatalf("outbox page:\n%s", page)
	}
}

// TestWALOutbox: a master whose outbox is the WAL has no table backlog to
// show; the page says where its events wait instead.
func TestWALOutbox(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *admin.Config) { c.WALSlot = "orders_slot" })
	c := newClient(t, b.srv.URL)
	page := c.login()
	if !strings.Contains(page, "in the WAL, slot <code>orders_slot</code>") || strings.Contains(page, `id="overview-backlog"`) {
		t.Fatalf("overview of a WAL master:\n%s", page)
	}
	if _, _, page = c.do("GET", "/outbox", nil, nil); !strings.Contains(page, `id="wal-outbox"`) || strings.Contains(page, `id="backlog-rows"`) {
		t.Fatalf("outbox page of a WAL master:\n%s", page)
	}
}
