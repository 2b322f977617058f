package admin_test

import (
	"database/sql"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/admin"
	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
	"github.com/cqrsync/cqrsync/transport"
	"github.com/cqrsync/cqrsync/transport/memory"
)

const testToken = "0123456789abcdef-test-token"

const accountDDL = `CREATE TABLE account (id INTEGER PRIMARY KEY, name TEXT NOT NULL,
	cqrs_revision INTEGER NOT NULL DEFAULT 0, cqrs_updated DATETIME)`

const accountCopyDDL = `CREATE TABLE account_copy (id INTEGER PRIMARY KEY, name TEXT NOT NULL,
	cqrs_revision INTEGER NOT NULL DEFAULT 0, cqrs_updated DATETIME)`

// bundle is a service that is master and replica of "account" on SQLite,
// with the memory broker, and its admin page on a test server.
type bundle struct {
	masterDB, replicaDB *sql.DB
	master              *cqrsync.Master[*sql.Tx]
	replica             *cqrsync.Replica
	broker              *memory.Broker
	queue               string
	cfg                 *admin.Config
	srv                 *httptest.Server
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// setup builds the bundle; edit, when set, changes the page's Config
// before the server starts.
func setup(t *testing.T, edit func(c *admin.Config)) *bundle {
	t.Helper()
	b := &bundle{queue: "billing", broker: memory.NewBroker(nil)}
	b.masterDB = cqrsynctesting.OpenSQLite(t, accountDDL)
	b.replicaDB = cqrsynctesting.OpenSQLite(t, accountCopyDDL)
	mdrv := databasesql.New(b.masterDB, sqldialect.SQLite())
	var err error
	if b.master, err = cqrsync.NewMaster(mdrv, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.master.Register(&cqrsync.MasterModel{CQRSID: "account", Table: "account", FieldNames: map[string]string{"name": "title"}}); err != nil {
		t.Fatal(err)
	}
	if b.replica, err = cqrsync.NewReplica(databasesql.New(b.replicaDB, sqldialect.SQLite()), &cqrsync.ReplicaConfig{Logger: quiet()}); err != nil {
		t.Fatal(err)
	}
	if err := b.replica.Register(&cqrsync.ReplicaModel{CQRSID: "account", Table: "account_copy", Mapping: map[string]string{"id": "id", "title": "name"}}); err != nil {
		t.Fatal(err)
	}
	if err := b.broker.DeclareQueue(b.queue, "account"); err != nil {
		t.Fatal(err)
	}
	pub := b.broker.Publisher()
	t.Cleanup(func() { _ = pub.Close() })
	b.cfg = &admin.Config{
		Token: testToken, Master: b.master, MasterDB: mdrv, Replica: b.replica,
		Queue: b.queue, DeadLetters: b.broker, Publisher: pub, Logger: quiet(),
		Endpoints: []admin.Endpoint{{Name: "broker", URL: "amqp://guest:hunter2-secret@127.0.0.1:5672/"}},
	}
	if edit != nil {
		edit(b.cfg)
	}
	h, err := admin.New(b.cfg)
	if err != nil {
		t.Fatal(err)
	}
	b.srv = httptest.NewServer(h)
	t.Cleanup(b.srv.Close)
	return b
}

// deadLetter puts a dead letter with reason into the dead-letter queue.
func (b *bundle) deadLetter(t *testing.T, body, reason string) {
	t.Helper()
	pub := b.broker.Publisher()
	defer pub.Close()
	err := pub.Publish(t.Context(), []transport.Message{{
		CQRSID: "account", Queue: transport.DeadLetterQueue(b.queue), IntoQueue: true, Body: []byte(body),
		Headers: map[string]string{cqrsync.HeaderDeadLetterReason: reason},
	}})
	if err != nil {
		t.Fatal(err)
	}
}

// client is a browser-like client: a cookie jar, no automatic redirects,
// and the page's origin on its POSTs.
type client struct {
	t    *testing.T
	base string
	http *http.Client
}

func newClient(t *testing.T, base string) *client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	return &client{t: t, base: base, http: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// do sends a request and returns the status, the Location and the body.
func (c *client) do(method, path string, form url.Values, header map[string]string) (int, string, string) {
	c.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(c.t.Context(), method, c.base+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Accept", "text/html")
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", c.base)
	}
	for k, v := range header {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Location"), string(b)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

// csrf returns the CSRF token in a page.
func csrf(t *testing.T, page string) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token in the page:\n%s", page)
	}
	return m[1]
}

// login logs the client in with the token and returns the overview page.
func (c *client) login() string {
	c.t.Helper()
	_, _, page := c.do("GET", "/login", nil, nil)
	code, loc, _ := c.do("POST", "/login", url.Values{"csrf": {csrf(c.t, page)}, "token": {testToken}}, nil)
	if code != http.StatusSeeOther || loc != "/" {
		c.t.Fatalf("login = %d → %q; want 303 to /", code, loc)
	}
	code, _, page = c.do("GET", "/", nil, nil)
	if code != http.StatusOK {
		c.t.Fatalf("overview after login = %d:\n%s", code, page)
	}
	return page
}
