package admin

import (
	"cmp"
	"crypto/rand"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/tools"
	"github.com/cqrsync/cqrsync/transport"
)

// Master is what the page uses of a *cqrsync.Master[TTx], whatever its
// transaction type: the tools' view of it (the sync preview is a dump).
type Master interface {
	tools.Master
	// Models returns the registered CQRS IDs.
	Models() []string
}

var _ Master = (*cqrsync.Master[any])(nil)

// Relay is what the page shows of an outbox relay running in the same
// process (an *outbox.Relay): its state, and a wake after a sync.
type Relay interface {
	// Started is closed once the relay runs.
	Started() <-chan struct{}
	// Published returns how many events the relay has published.
	Published() int64
	// Wake makes the relay look for events now.
	Wake()
}

// Endpoint is a URL shown on the overview, with its password redacted.
type Endpoint struct {
	// Name says what it is, e.g. "database" or "broker".
	Name string
	// URL is shown with the password of its user info replaced by "xxxxx".
	URL string
}

// Config configures the page. Token, or Username and Password, are
// required; everything else is optional, and a page whose part is missing
// says so.
type Config struct {
	// Token is a shared secret: typed in the login form, or sent as
	// "Authorization: Bearer <token>". At least 16 characters.
	Token string
	// Username and Password log in on the form or by HTTP basic auth. The
	// password must have at least 12 characters.
	Username, Password string

	// Master holds the master models; nil hides the master side. Syncs
	// and previews run on MasterDB.
	Master Master
	// MasterDB is the master database: the outbox backlog, the master
	// tables' freshness, the sync action. Required with Master.
	MasterDB sqldialect.DB
	// WALSlot, when set, says the master's outbox is PostgreSQL's
	// write-ahead log (cqrsync.OutboxWAL), streamed through this
	// replication slot: cqrs_outbox stays empty, so the outbox page shows
	// no table backlog and points to `cqrsync outbox status`.
	WALSlot string
	// Relay, when set, is the outbox relay of this process: its state is
	// shown and a sync wakes it. Nil: another process's relay sends the
	// events (cqrsync relay).
	Relay Relay
	// Replica holds the replica models; nil hides the replica side. Its
	// tables' freshness is read on its own database.
	Replica *cqrsync.Replica
	// Queue is this replica service's queue: its dead letters are shown,
	// and retried dead letters go back to it.
	Queue string
	// DeadLetterQueue overrides "dead_letter_<Queue>".
	DeadLetterQueue string
	// DeadLetters browses, retries and purges dead letters; nil hides them.
	DeadLetters transport.DeadLetters
	// Publisher sends retried dead letters. Required with DeadLetters for
	// retries.
	Publisher transport.Publisher

	// Endpoints are shown on the overview, passwords redacted.
	Endpoints []Endpoint
	// Secrets are strings (passwords) scrubbed from every error shown.
	Secrets []string
	// TrustedOrigins are origins ("https://admin.example.com") accepted
	// besides the request's own host, for a proxy that rewrites Host.
	TrustedOrigins []string
	// SessionTTL is how long a login lasts. Default 12 hours.
	SessionTTL time.Duration
	// Title is the page's title. Default "cqrsync admin".
	Title string
	// Logger receives the failures of actions. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Problems of a Config that New reports.
var (
	// ErrNoCredentials: the page would be open to anyone.
	ErrNoCredentials = errors.New("admin: no credentials configured: set Config.Token (16+ characters) or Config.Username and Config.Password; the admin page is never served without authentication")
)

// validate reports every problem of c at once.
func (c *Config) validate() error {
	var errs []error
	if c.Token == "" && c.Username == "" && c.Password == "" {
		return ErrNoCredentials
	}
	if c.Token != "" && len(c.Token) < 16 {
		errs = append(errs, fmt.Errorf("admin: Config.Token has %d characters: use at least 16 (e.g. openssl rand -hex 24)", len(c.Token)))
	}
	if (c.Username == "") != (c.Password == "") {
		errs = append(errs, errors.New("admin: set both Config.Username and Config.Password, or neither"))
	} else if c.Password != "" && len(c.Password) < 12 {
		errs = append(errs, fmt.Errorf("admin: Config.Password has %d characters: use at least 12", len(c.Password)))
	}
	if c.Master != nil && c.MasterDB == nil {
		errs = append(errs, errors.New("admin: Config.Master is set without Config.MasterDB: pass the master database's driver"))
	}
	if c.SessionTTL < 0 {
		errs = append(errs, fmt.Errorf("admin: Config.SessionTTL is negative (%v): use a positive duration, or 0 for 12h", c.SessionTTL))
	}
	return errors.Join(errs...)
}

// Handler serves the admin page. It is safe for concurrent use.
type Handler struct {
	cfg   Config
	log   *slog.Logger
	pages map[string]*template.Template
	mux   *http.ServeMux
	key   []byte // derives the CSRF tokens of header-authenticated requests

	mu       sync.Mutex
	sessions map[string]*session
	flashes  map[string]*flash
	failed   map[string]*failures // failed logins by remote address
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// New returns the page's handler. It fails when c has no credentials, or
// credentials too short to resist guessing.
func New(c *Config) (*Handler, error) {
	if c == nil {
		return nil, ErrNoCredentials
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	h := &Handler{cfg: *c, sessions: map[string]*session{}, key: make([]byte, 32)}
	h.cfg.SessionTTL = cmp.Or(h.cfg.SessionTTL, 12*time.Hour)
	h.cfg.Title = cmp.Or(h.cfg.Title, "cqrsync admin")
	if h.cfg.Now == nil {
		h.cfg.Now = time.Now
	}
	h.log = cmp.Or(h.cfg.Logger, slog.Default())
	_, _ = rand.Read(h.key) // crypto/rand never fails (Go 1.24+)
	if err := h.parseTemplates(); err != nil {
		return nil, err
	}
	static, _ := fs.Sub(staticFS, "static")
	h.mux = http.NewServeMux()
	h.mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	h.mux.HandleFunc("GET /login", h.loginForm)
	h.mux.HandleFunc("POST /login", h.login)
	h.mux.Handle("POST /logout", h.authed(h.logout))
	h.mux.Handle("GET /{$}", h.authed(h.overview))
	h.mux.Handle("GET /models", h.authed(h.models))
	h.mux.Handle("GET /outbox", h.authed(h.outbox))
	h.mux.Handle("GET /freshness", h.authed(h.freshness))
	h.mux.Handle("GET /dead-letters", h.authed(h.deadLetters))
	h.mux.Handle("POST /dead-letters", h.authed(h.deadLetterAction))
	h.mux.Handle("GET /sync", h.authed(h.syncForm))
	h.mux.Handle("POST /sync", h.authed(h.syncAction))
	return h, nil
}

// ServeHTTP serves the page, with its security headers on every response.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "same-origin")
	hd.Set("Cache-Control", "no-store")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.mux.ServeHTTP(w, r)
}

// scrub removes the configured secrets from an error message.
func (h *Handler) scrub(msg string) string {
	for _, s := range h.cfg.Secrets {
		if len(s) >= 3 {
			msg = strings.ReplaceAll(msg, s, "xxxxx")
		}
	}
	for _, s := range []string{h.cfg.Token, h.cfg.Password} {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "xxxxx")
		}
	}
	return msg
}
