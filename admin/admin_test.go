package admin_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync/admin"
	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/transport"
)

func TestNewRefusesWeakOrNoCredentials(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  *admin.Config
		want string
	}{
		{"nil", nil, "no credentials"},
		{"empty", &admin.Config{}, "no credentials"},
		{"short token", &admin.Config{Token: "short"}, "at least 16"},
		{"user without password", &admin.Config{Username: "ops"}, "both"},
		{"short password", &admin.Config{Username: "ops", Password: "abc"}, "at least 12"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h, err := admin.New(tc.cfg)
			if h != nil || err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, %v; want an error saying %q", h, err, tc.want)
			}
		})
	}
	if _, err := admin.New(nil); !errors.Is(err, admin.ErrNoCredentials) {
		t.Fatalf("New(nil) = %v, want ErrNoCredentials", err)
	}
}

// TestRefusedWithoutCredentials: every page but the login form needs
// credentials; a browser is sent to the form, anything else gets 401.
func TestRefusedWithoutCredentials(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *admin.Config) { c.Username, c.Password = "ops", "correct horse battery" })
	c := newClient(t, b.srv.URL)
	for _, path := range []string{"/", "/models", "/outbox", "/freshness", "/dead-letters", "/sync"} {
		if code, loc, _ := c.do("GET", path, nil, nil); code != http.StatusSeeOther || loc != "/login" {
			t.Errorf("GET %s without credentials = %d → %q; want 303 to /login", path, code, loc)
		}
		if code, _, _ := c.do("GET", path, nil, map[string]string{"Accept": "application/json"}); code != http.StatusUnauthorized {
			t.Errorf("GET %s without credentials, not a browser = %d; want 401", path, code)
		}
	}
	for _, auth := range []string{"Bearer wrong-token-0123456789", "Basic b3BzOndyb25n" /* ops:wrong */} {
		if code, _, _ := c.do("GET", "/", nil, map[string]string{"Authorization": auth}); code != http.StatusUnauthorized {
			t.Errorf("GET / with %q = %d; want 401", auth, code)
		}
	}
	form := url.Values{"action": {"purge"}, "any_reason": {"1"}}
	if code, _, _ := c.do("POST", "/dead-letters", form, nil); code != http.StatusUnauthorized {
		t.Errorf("POST /dead-letters without credentials = %d; want 401", code)
	}
	// A wrong password on the form is refused, and gives no session.
	_, _, page := c.do("GET", "/login", nil, nil)
	code, _, page := c.do("POST", "/login", url.Values{"csrf": {csrf(t, page)}, "username": {"ops"}, "password": {"wrong"}}, nil)
	if code != http.StatusUnauthorized || !strings.Contains(page, "Wrong credentials") {
		t.Fatalf("login with a wrong password = %d; want 401 and the form again:\n%s", code, page)
	}
	if code, _, _ := c.do("GET", "/", nil, nil); code != http.StatusSeeOther {
		t.Fatalf("GET / after a failed login = %d; want 303 to the login form", code)
	}
}

func TestHeaderAuth(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *admin.Config) { c.Username, c.Password = "ops", "correct horse battery" })
	c := newClient(t, b.srv.URL)
	for _, auth := range []string{"Bearer " + testToken, "Basic b3BzOmNvcnJlY3QgaG9yc2UgYmF0dGVyeQ==" /* ops:correct horse battery */} {
		code, _, page := c.do("GET", "/models", nil, map[string]string{"Authorization": auth})
		if code != http.StatusOK || !strings.Contains(page, "account_copy") {
			t.Fatalf("GET /models with %q = %d:\n%s", auth, code, page)
		}
	}
}

// TestCSRF: a state-changing request needs the page's CSRF token and the
// page's own origin, even from a logged-in browser.
func TestCSRF(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.deadLetter(t, `{"signal_type":"SAVE","cqrs_id":"account","instance_pk":1}`, "boom")
	c := newClient(t, b.srv.URL)
	page := c.login()
	token := csrf(t, page)
	purge := func(tok string, header map[string]string) int {
		code, _, _ := c.do("POST", "/dead-letters", url.Values{"csrf": {tok}, "action": {"purge"}, "any_reason": {"1"}}, header)
		return code
	}
	for _, tc := range []struct {
		name   string
		token  string
		header map[string]string
	}{
		{"no token", "", nil},
		{"wrong token", strings.Repeat("0", len(token)), nil},
		{"cross-site origin", token, map[string]string{"Origin": "https://evil.example"}},
		{"no origin nor referer", token, map[string]string{"Origin": ""}},
	} {
		if code := purge(tc.token, tc.header); code != http.StatusForbidden {
			t.Errorf("%s: purge = %d; want 403", tc.name, code)
		}
	}
	if n := b.broker.QueueLen(transport.DeadLetterQueue(b.queue)); n != 1 {
		t.Fatalf("dead letters after refused purges = %d; want 1", n)
	}
	if code := purge(token, map[string]string{"Origin": "", "Referer": b.srv.URL + "/dead-letters"}); code != http.StatusSeeOther {
		t.Fatalf("purge with the token and a same-origin Referer = %d; want 303", code)
	}
	if n := b.broker.QueueLen(transport.DeadLetterQueue(b.queue)); n != 0 {
		t.Fatalf("dead letters after the purge = %d; want 0", n)
	}
	// The login form has its own token.
	_, _, loginPage := c.do("GET", "/login", nil, nil)
	if code, _, _ := c.do("POST", "/login", url.Values{"csrf": {"nope"}, "token": {testToken}}, nil); code != http.StatusForbidden {
		t.Fatalf("login with a wrong CSRF token = %d; want 403", code)
	}
	_ = loginPage
	// Logging out ends the session.
	if code, _, _ := c.do("POST", "/logout", url.Values{"csrf": {token}}, nil); code != http.StatusSeeOther {
		t.Fatalf("logout = %d; want 303", code)
	}
	if code, _, _ := c.do("GET", "/", nil, nil); code != http.StatusSeeOther {
		t.Fatalf("GET / after logout = %d; want 303 to the login form", code)
	}
}

func TestSecurityHeadersAndNoSecrets(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *admin.Config) { c.Secrets = []string{"hunter2-secret"} })
	resp, err := http.Get(b.srv.URL + "/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for k, want := range map[string]string{"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("Content-Security-Policy = %q", csp)
	}
	page := newClient(t, b.srv.URL).login()
	if strings.Contains(page, "hunter2") || !strings.Contains(page, "amqp://guest:xxxxx@127.0.0.1:5672/") {
		t.Fatalf("overview shows a password, or not the redacted URL:\n%s", page)
	}
}

func TestRedact(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"postgres://app:s3cret@db:5432/app?sslmode=disable": "postgres://app:xxxxx@db:5432/app?sslmode=disable",
		"amqp://guest:guest@127.0.0.1:5672/":                "amqp://guest:xxxxx@127.0.0.1:5672/",
		"mysql://root@127.0.0.1:3306/test":                  "mysql://root@127.0.0.1:3306/test",
		"root:pw@tcp(127.0.0.1:3306)/test?parseTime=true":   "root:xxxxx@tcp(127.0.0.1:3306)/test?parseTime=true",
		"sqlite:///var/lib/app.db":                          "sqlite:///var/lib/app.db",
		"postgres://db/app?password=s3cret":                 "postgres://db/app?password=xxxxx",
	} {
		if got := admin.Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestMountedUnderPrefix: under http.StripPrefix the links, redirects and
// cookies stay under the prefix.
func TestMountedUnderPrefix(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	h, err := admin.New(b.cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/ops/cqrs/", http.StripPrefix("/ops/cqrs", h))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	c := newClient(t, srv.URL)
	if code, loc, _ := c.do("GET", "/ops/cqrs/models", nil, nil); code != http.StatusSeeOther || loc != "/ops/cqrs/login" {
		t.Fatalf("GET models = %d → %q; want 303 to /ops/cqrs/login", code, loc)
	}
	_, _, page := c.do("GET", "/ops/cqrs/login", nil, nil)
	code, loc, _ := c.do("POST", "/ops/cqrs/login", url.Values{"csrf": {csrf(t, page)}, "token": {testToken}}, nil)
	if code != http.StatusSeeOther || loc != "/ops/cqrs/" {
		t.Fatalf("login = %d → %q; want 303 to /ops/cqrs/", code, loc)
	}
	if code, _, page := c.do("GET", "/ops/cqrs/models", nil, nil); code != http.StatusOK || !strings.Contains(page, `href="static/admin.css"`) {
		t.Fatalf("GET models after login = %d:\n%s", code, page)
	}
	if code, _, _ := c.do("GET", "/ops/cqrs/static/admin.css", nil, nil); code != http.StatusOK {
		t.Fatalf("GET the stylesheet = %d", code)
	}
}

// TestCookieAttributes: the login cookies are HttpOnly and SameSite=Strict,
// and Secure when the page is reached over HTTPS (through a proxy here).
func TestCookieAttributes(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	for _, proto := range []string{"", "https"} {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", b.srv.URL+"/login", nil)
		if proto != "" {
			req.Header.Set("X-Forwarded-Proto", proto)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		c := resp.Header.Get("Set-Cookie")
		if !strings.Contains(c, "HttpOnly") || !strings.Contains(c, "SameSite=Strict") || strings.Contains(c, "Secure") != (proto == "https") {
			t.Errorf("X-Forwarded-Proto %q: Set-Cookie %q; want HttpOnly, SameSite=Strict, and Secure only over https", proto, c)
		}
	}
}

// TestFailedLoginsAreLimited: after 10 failed logins in 10 minutes, an
// address is refused even the right token until the window passes.
func TestFailedLoginsAreLimited(t *testing.T) {
	t.Parallel()
	clock := cqrsynctesting.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	b := setup(t, func(c *admin.Config) { c.Now = clock.Now })
	c := newClient(t, b.srv.URL)
	login := func(token string) int {
		_, _, page := c.do("GET", "/login", nil, nil)
		code, _, _ := c.do("POST", "/login", url.Values{"csrf": {csrf(t, page)}, "token": {token}}, nil)
		return code
	}
	for i := range 10 {
		if code := login("wrong-token-0123456789"); code != http.StatusUnauthorized {
			t.Fatalf("failed login %d = %d; want 401", i+1, code)
		}
	}
	if code := login(testToken); code != http.StatusTooManyRequests {
		t.Fatalf("login after 10 failures = %d; want 429", code)
	}
	// Credentials in a header count, and are refused, the same way.
	if code, _, _ := c.do("GET", "/models", nil, map[string]string{"Authorization": "Bearer " + testToken}); code != http.StatusTooManyRequests {
		t.Fatalf("the right bearer token after 10 failures = %d; want 429", code)
	}
	clock.Advance(10 * time.Minute)
	for i := range 10 {
		if code, _, _ := c.do("GET", "/models", nil, map[string]string{"Authorization": "Bearer wrong-token-0123456789"}); code != http.StatusUnauthorized {
			t.Fatalf("failed bearer token %d = %d; want 401", i+1, code)
		}
	}
	if code := login(testToken); code != http.StatusTooManyRequests {
		t.Fatalf("login after 10 failed bearer tokens = %d; want 429", code)
	}
	clock.Advance(10 * time.Minute)
	if code := login(testToken); code != http.StatusSeeOther {
		t.Fatalf("login once the window passed = %d; want 303", code)
	}
}
