package admin_test

import (
	"context"
	"database/sql"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/admin"
	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/internal/testenv"
	"github.com/cqrsync/cqrsync/outbox"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
	"github.com/cqrsync/cqrsync/transport/rabbitmq"
)

// EnvScreenshots names the directory where TestBrowser saves a PNG of
// each page (docs/admin in the repository); unset, it saves none.
const EnvScreenshots = "CQRSYNC_ADMIN_SCREENSHOTS"

// chromiumPath returns Debian's chromium, skipping the test locally when
// it is missing and failing it under CI.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("CQRSYNC_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p == "" {
			continue
		}
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	const hint = "chromium is not installed: apt-get install -y chromium (or set CQRSYNC_CHROMIUM)"
	if testenv.InCI() {
		t.Fatal(hint)
	}
	t.Skip(hint)
	return ""
}

// browser starts a headless Chromium with a fresh profile and returns a
// tab's context; everything stops when the test ends.
func browser(t *testing.T) context.Context {
	t.Helper()
	path := chromiumPath(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc() // waits for the browser process to exit
	})
	// Start the browser now, so that a failure to start says so.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium %s: %v", path, err)
	}
	return ctx
}

// live is a master and a replica on PostgreSQL joined by RabbitMQ, with the
// admin page of a service that is both.
type live struct {
	masterDB, replicaDB *sql.DB
	master              *cqrsync.Master[*sql.Tx]
	relay               *outbox.Relay
	tr                  *rabbitmq.Transport
	queue               string
	srv                 *httptest.Server
}

func setupLive(t *testing.T) *live {
	t.Helper()
	url := testenv.AMQPURL(t)
	l := &live{queue: cqrsynctesting.UniqueName("cqrsynctest_admin_q_")}
	exchange := cqrsynctesting.UniqueName("cqrsynctest_admin_x_")
	l.masterDB = cqrsynctesting.OpenPostgres(t, `CREATE TABLE account (id BIGINT PRIMARY KEY, name TEXT NOT NULL,
		cqrs_revision INTEGER NOT NULL DEFAULT 0, cqrs_updated TIMESTAMPTZ)`)
	// The replica refuses a name, so that an event can fail and be
	// dead-lettered, until the constraint is dropped.
	l.replicaDB = cqrsynctesting.OpenPostgres(t, `CREATE TABLE account_copy (id BIGINT PRIMARY KEY, name TEXT NOT NULL,
		cqrs_revision INTEGER NOT NULL DEFAULT 0, cqrs_updated TIMESTAMPTZ, CONSTRAINT no_poison CHECK (name <> 'poison'))`)
	var err error
	l.tr, err = rabbitmq.New(t.Context(), &rabbitmq.Config{URL: url, Exchange: exchange, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = l.tr.Close()
		cqrsynctesting.DeleteRabbitMQ(url, exchange, l.queue)
	})
	mdrv := databasesql.New(l.masterDB, sqldialect.Postgres())
	if l.relay, err = outbox.NewRelay(mdrv, &outbox.Config{Publisher: l.tr, Logger: quiet(), PollInterval: 50 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if l.master, err = cqrsync.NewMaster(mdrv, &cqrsync.MasterConfig{Relay: l.relay}); err != nil {
		t.Fatal(err)
	}
	if err := l.master.Register(&cqrsync.MasterModel{CQRSID: "account", Table: "account", Fields: []string{"id", "name"}, TrackedFields: []string{"name"}}); err != nil {
		t.Fatal(err)
	}
	replica, err := cqrsync.NewReplica(databasesql.New(l.replicaDB, sqldialect.Postgres()), &cqrsync.ReplicaConfig{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	if err := replica.Register(&cqrsync.ReplicaModel{CQRSID: "account", Table: "account_copy"}); err != nil {
		t.Fatal(err)
	}
	consumer, err := cqrsync.NewConsumer(&cqrsync.ConsumerConfig{
		Replica: replica, Subscriber: l.tr, Publisher: l.tr, Queue: l.queue, Logger: quiet(),
		Retry: cqrsync.RetryPolicy{MaxRetries: -1}, // a failing event goes to the dead letters at once
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := consumer.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = consumer.Stop() })
	<-consumer.Started()
	h, err := admin.New(&admin.Config{
		Token: testToken, Master: l.master, MasterDB: mdrv, Relay: l.relay, Replica: replica,
		Queue: l.queue, DeadLetters: l.tr, Publisher: l.tr, Logger: quiet(),
		Endpoints: []admin.Endpoint{{Name: "broker", URL: url}, {Name: "master database", URL: "postgres://app:s3cret-pass@db.internal:5432/app"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	l.srv = httptest.NewServer(h)
	t.Cleanup(l.srv.Close)
	return l
}

// insert writes rows on the master and captures them.
func (l *live) insert(t *testing.T, rows map[int64]string) {
	t.Helper()
	err := cqrsync.RunTx(t.Context(), l.masterDB, l.master, func(tx *sql.Tx) error {
		for id, name := range rows {
			if err := l.master.Insert(t.Context(), tx, "account", map[string]any{"id": id, "name": name}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// replicaName returns the replica's name of a row, "" when it has none.
func (l *live) replicaName(t *testing.T, id int64) string {
	t.Helper()
	var name string
	_ = l.replicaDB.QueryRowContext(t.Context(), `SELECT name FROM account_copy WHERE id = $1`, id).Scan(&name)
	return name
}

// shooter saves screenshots when EnvScreenshots is set.
type shooter struct {
	t   *testing.T
	dir string
}

func (s shooter) shot(ctx context.Context, name string) {
	s.t.Helper()
	if s.dir == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		s.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(s.dir, name+".png"), png, 0o644); err != nil {
		s.t.Fatal(err)
	}
}

// text navigates to a page and returns the text of an element.
func text(t *testing.T, ctx context.Context, url, sel string) string {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("%s: %v", url, err)
	}
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("%s %s: %v", url, sel, err)
	}
	return strings.TrimSpace(s)
}

// TestBrowser drives the page in headless Chromium against PostgreSQL and
// RabbitMQ: refused without credentials, log in, watch a backlog appear
// and drain, retry a dead letter, repair a replica row with a sync, and a
// forged CSRF token refused.
func TestBrowser(t *testing.T) {
	t.Parallel()
	testenv.Slow(t, "starts Chromium")
	ctx := browser(t)
	l := setupLive(t)
	shots := shooter{t: t, dir: os.Getenv(EnvScreenshots)}
	base := l.srv.URL + "/"
	run := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := chromedp.Do(tctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	read := func(what string, a chromedp.Action[string]) string {
		t.Helper()
		tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		v, err := chromedp.Run(tctx, a)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return strings.TrimSpace(v)
	}

	// Without credentials every page sends the browser to the login form.
	run("open the page without logging in", chromedp.Navigate(base+"dead-letters"), chromedp.WaitVisible(chromedp.CSS("#login-form")))
	loc := read("where the browser is", chromedp.Location())
	if loc != base+"login" {
		t.Fatalf("without credentials the browser is at %s; want the login form", loc)
	}
	run("log in with a wrong token", chromedp.SendKeys(chromedp.CSS("#token"), "not-the-token-at-all"), chromedp.Click(chromedp.CSS("#login")), chromedp.WaitVisible(chromedp.CSS("#login-failed")))
	shots.shot(ctx, "login")
	run("log in", chromedp.SendKeys(chromedp.CSS("#token"), testToken), chromedp.Click(chromedp.CSS("#login")), chromedp.WaitVisible(chromedp.CSS("nav")))
	overview := read("read the overview", chromedp.OuterHTML(chromedp.CSS("main")))
	if strings.Contains(overview, "s3cret-pass") || !strings.Contains(overview, "postgres://app:xxxxx@db.internal:5432/app") {
		t.Fatalf("the overview shows a password or not the redacted URL:\n%s", overview)
	}
	shots.shot(ctx, "overview")

	// A backlog appears while no relay runs, and drains once one does.
	l.insert(t, map[int64]string{1: "Ada", 2: "Grace", 3: "poison"})
	if got := text(t, ctx, base+"outbox", "#backlog-rows"); got != "3" {
		t.Fatalf("backlog before the relay runs = %q; want 3", got)
	}
	if got := text(t, ctx, base+"outbox", "#relay-state"); got != "not running" {
		t.Fatalf("relay state = %q; want not running", got)
	}
	shots.shot(ctx, "outbox")
	if err := l.relay.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.relay.Stop() })
	cqrsynctesting.Eventually(t, 30*time.Second, "the backlog drains on the page", func() bool {
		return text(t, ctx, base+"outbox", "#backlog-rows") == "0"
	})
	if got := text(t, ctx, base+"outbox", "#relay-published"); got != "3" {
		t.Fatalf("relay published = %q; want 3", got)
	}

	// The poisoned row is dead-lettered; the page lists it with its reason.
	cqrsynctesting.Eventually(t, 30*time.Second, "the poisoned event is dead-lettered", func() bool {
		return text(t, ctx, base+"dead-letters", "#dl-total") == "1"
	})
	run("select the dead letter's reason", chromedp.Click(chromedp.CSS("#dl-groups a.select")), chromedp.WaitVisible(chromedp.CSS("#dl-list")))
	reason := read("read the dead letter's reason", chromedp.Text(chromedp.CSS("#dl-list td.reason")))
	pk := read("read the dead letter's key", chromedp.Text(chromedp.CSS("#dl-list td.pk")))
	if !strings.Contains(reason, "no_poison") || pk != "3" {
		t.Fatalf("dead letter: pk %q, reason %q; want 3 and the check constraint", pk, reason)
	}
	shots.shot(ctx, "dead-letters")
	// A forged CSRF token is refused, and nothing is purged.
	run("purge with a forged CSRF token",
		chromedp.SetValue(chromedp.CSS("#dl-purge input[name=csrf]"), strings.Repeat("f", 64), chromedp.NodeReady),
		chromedp.Click(chromedp.CSS("#dl-purge button")))
	status := read("read the refusal", chromedp.Text(chromedp.CSS("#error-status")))
	if status != "403 forbidden" || text(t, ctx, base+"dead-letters", "#dl-total") != "1" {
		t.Fatalf("purge with a forged CSRF token: %q, and the dead letter is gone; want 403 forbidden and the dead letter kept", status)
	}
	// Fix the replica, retry the dead letter: the row arrives.
	if _, err := l.replicaDB.ExecContext(t.Context(), `ALTER TABLE account_copy DROP CONSTRAINT no_poison`); err != nil {
		t.Fatal(err)
	}
	run("retry the dead letter", chromedp.Navigate(base+"dead-letters"), chromedp.Click(chromedp.CSS("#dl-groups a.select")),
		chromedp.WaitVisible(chromedp.CSS("#dl-retry")), chromedp.Click(chromedp.CSS("#dl-retry button")))
	flash := read("read the outcome", chromedp.Text(chromedp.CSS("#flash")))
	if !strings.Contains(flash, "Sent 1 dead letters of account") {
		t.Fatalf("after retry the page says %q", flash)
	}
	cqrsynctesting.Eventually(t, 30*time.Second, "the retried row reaches the replica", func() bool { return l.replicaName(t, 3) == "poison" })

	// Damage a replica row; a sync to the replica's queue repairs it.
	cqrsynctesting.Eventually(t, 30*time.Second, "the replica has row 1", func() bool { return l.replicaName(t, 1) == "Ada" })
	if _, err := l.replicaDB.ExecContext(t.Context(), `UPDATE account_copy SET name = 'damaged' WHERE id = 1`); err != nil {
		t.Fatal(err)
	}
	run("preview the sync", chromedp.Navigate(base+"sync"),
		chromedp.SendKeys(chromedp.CSS("#sync-keys"), "1"), chromedp.SendKeys(chromedp.CSS("#sync-queue"), l.queue),
		chromedp.Click(chromedp.CSS("#sync-preview")))
	count := read("read the preview", chromedp.Text(chromedp.CSS("#sync-count")))
	if count != "1" {
		t.Fatalf("sync preview counts %q rows; want 1", count)
	}
	shots.shot(ctx, "sync")
	run("run the sync", chromedp.Click(chromedp.CSS("#sync-run")))
	flash = read("read the outcome", chromedp.Text(chromedp.CSS("#flash")))
	if !strings.Contains(flash, "Enqueued 1 SYNC event(s) of account for queue "+l.queue) {
		t.Fatalf("after the sync the page says %q", flash)
	}
	cqrsynctesting.Eventually(t, 30*time.Second, "the sync repairs the replica row", func() bool { return l.replicaName(t, 1) == "Ada" })

	// The remaining pages render, with what they are about.
	run("freshness", chromedp.Navigate(base+"freshness"))
	fresh := read("read freshness", chromedp.Text(chromedp.CSS("#freshness")))
	if !strings.Contains(fresh, "account_copy") || !strings.Contains(fresh, "3") {
		t.Fatalf("freshness page: %q", fresh)
	}
	shots.shot(ctx, "freshness")
	run("models", chromedp.Navigate(base+"models"))
	models := read("read models", chromedp.Text(chromedp.CSS("#replica-models")))
	if !strings.Contains(models, "account_copy") {
		t.Fatalf("models page: %q", models)
	}
	shots.shot(ctx, "models")
	run("log out", chromedp.Click(chromedp.CSS("#logout")), chromedp.WaitVisible(chromedp.CSS("#login-form")))
	run("open a page after logging out", chromedp.Navigate(base+"models"), chromedp.WaitVisible(chromedp.CSS("#login-form")))
}
