package admin

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Cookie names.
const (
	sessionCookie = "cqrsync_admin_session"
	loginCookie   = "cqrsync_admin_login" // the login form's double-submit CSRF token
	csrfField     = "csrf"
)

// session is a logged-in browser.
type session struct {
	csrf    string
	user    string
	expires time.Time
}

// caller is who made an authenticated request, and the CSRF token its
// forms must carry.
type caller struct {
	user    string
	csrf    string
	session string // the session ID; "" when authenticated by header
}

// randomToken returns 32 random bytes in hex.
func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// equal compares two secrets in constant time, whatever their lengths (it
// compares their hashes, so a length difference leaks nothing either).
func equal(a, b string) bool {
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1 && a != "" && b != ""
}

// checkCredentials reports whether token, or user and password, are the
// configured ones, and who logged in.
func (h *Handler) checkCredentials(token, user, password string) (string, bool) {
	if h.cfg.Token != "" && token != "" && equal(token, h.cfg.Token) {
		return "token", true
	}
	if h.cfg.Username != "" && user != "" {
		u, p := equal(user, h.cfg.Username), equal(password, h.cfg.Password)
		if u && p {
			return user, true
		}
	}
	return "", false
}

// authenticate returns the caller of r: a live session cookie, a bearer
// token or basic auth. ok is false when r carries none of them validly.
func (h *Handler) authenticate(r *http.Request) (caller, bool) {
	if auth := r.Header.Get("Authorization"); auth != "" {
		var who string
		var ok bool
		if tok, found := strings.CutPrefix(auth, "Bearer "); found {
			who, ok = h.checkCredentials(strings.TrimSpace(tok), "", "")
		} else if u, p, basic := r.BasicAuth(); basic {
			who, ok = h.checkCredentials("", u, p)
		}
		if !ok {
			return caller{}, false
		}
		// A browser resends basic auth by itself, as it does a cookie: its
		// forms need a token too, one an attacker cannot compute.
		mac := hmac.New(sha256.New, h.key)
		mac.Write([]byte(auth))
		return caller{user: who, csrf: hex.EncodeToString(mac.Sum(nil))}, true
	}
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return caller{}, false
	}
	now := h.cfg.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	s, ok := h.sessions[c.Value]
	if !ok || now.After(s.expires) {
		delete(h.sessions, c.Value)
		return caller{}, false
	}
	return caller{user: s.user, csrf: s.csrf, session: c.Value}, true
}

// authed wraps a page: without credentials a browser is sent to the login
// form and anything else gets 401; a POST must also pass the CSRF checks.
func (h *Handler) authed(fn func(w http.ResponseWriter, r *http.Request, c caller)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		headerAuth := r.Header.Get("Authorization") != ""
		if headerAuth && h.throttled(remoteIP(r)) {
			w.Header().Set("Retry-After", strconv.Itoa(int(loginWindow.Seconds())))
			http.Error(w, "429 too many failed logins from this address: wait, then try again", http.StatusTooManyRequests)
			return
		}
		c, ok := h.authenticate(r)
		if !ok {
			if headerAuth {
				h.failedLogin(remoteIP(r))
			}
			if r.Method == http.MethodGet && r.Header.Get("Authorization") == "" && strings.Contains(r.Header.Get("Accept"), "text/html") {
				http.Redirect(w, r, relative(r, "login"), http.StatusSeeOther)
				return
			}
			if h.cfg.Username != "" {
				w.Header().Set("WWW-Authenticate", `Basic realm="cqrsync admin", charset="UTF-8"`)
			}
			http.Error(w, "401 unauthorized: log in on the login page, or send the token as \"Authorization: Bearer <token>\" or the user and password as basic auth", http.StatusUnauthorized)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if msg := h.checkOrigin(r); msg != "" {
				h.forbidden(w, r, msg)
				return
			}
			if !equal(r.PostFormValue(csrfField), c.csrf) {
				h.forbidden(w, r, "the form's security token (CSRF) is missing or wrong: reload the page and submit the form again")
				return
			}
		}
		fn(w, r, c)
	})
}

// checkOrigin returns why a state-changing request does not come from this
// page's own origin, or "" when it does. Browsers send Origin on every
// POST; Referer is the fallback. A request with neither is refused: the
// command-line tools are the way to script these actions.
func (h *Handler) checkOrigin(r *http.Request) string {
	origin := r.Header.Get("Origin")
	if origin == "" || origin == "null" {
		origin = r.Header.Get("Referer")
	}
	if origin == "" {
		return "the request has no Origin or Referer header: send the form from the admin page itself"
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return "the request's Origin is not a URL"
	}
	if strings.EqualFold(u.Host, r.Host) {
		return ""
	}
	if slices.Contains(h.cfg.TrustedOrigins, u.Scheme+"://"+u.Host) {
		return ""
	}
	return "the request comes from another site (" + u.Scheme + "://" + u.Host + "), not from the admin page; behind a proxy that rewrites Host, list the page's origin in Config.TrustedOrigins"
}

// forbidden answers 403 with a page that says why.
func (h *Handler) forbidden(w http.ResponseWriter, r *http.Request, why string) {
	w.WriteHeader(http.StatusForbidden)
	h.render(w, r, "error", caller{}, &errorPage{Status: "403 forbidden", Message: why})
}

type errorPage struct {
	Status, Message string
}

type loginPage struct {
	Token, Password bool
	Failed          bool
	CSRF            string
}

// loginForm shows the login form, with a fresh double-submit token in a
// cookie and in the form.
func (h *Handler) loginForm(w http.ResponseWriter, r *http.Request) {
	h.showLogin(w, r, false)
}

func (h *Handler) showLogin(w http.ResponseWriter, r *http.Request, failed bool) {
	tok := randomToken()
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: tok, Path: cookiePath(r), HttpOnly: true, Secure: secure(r), SameSite: http.SameSiteStrictMode, MaxAge: 3600})
	if failed {
		w.WriteHeader(http.StatusUnauthorized)
	}
	h.render(w, r, "login", caller{}, &loginPage{Token: h.cfg.Token != "", Password: h.cfg.Username != "", Failed: failed, CSRF: tok})
}

// login checks the form's CSRF token and origin, then the credentials,
// and starts a session.
func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	if msg := h.checkOrigin(r); msg != "" {
		h.forbidden(w, r, msg)
		return
	}
	c, err := r.Cookie(loginCookie)
	if err != nil || !equal(r.PostFormValue(csrfField), c.Value) {
		h.forbidden(w, r, "the login form's security token (CSRF) is missing or wrong: reload the login page and try again")
		return
	}
	ip := remoteIP(r)
	if h.throttled(ip) {
		w.Header().Set("Retry-After", strconv.Itoa(int(loginWindow.Seconds())))
		w.WriteHeader(http.StatusTooManyRequests)
		h.render(w, r, "error", caller{}, &errorPage{Status: "429 too many failed logins", Message: fmt.Sprintf("%d failed logins from this address in %v: wait, then log in again", maxFailedLogins, loginWindow)})
		return
	}
	user, ok := h.checkCredentials(r.PostFormValue("token"), r.PostFormValue("username"), r.PostFormValue("password"))
	if !ok {
		h.log.Warn("cqrsync admin: failed login", "remote", r.RemoteAddr)
		h.failedLogin(ip)
		h.showLogin(w, r, true)
		return
	}
	id := randomToken()
	now := h.cfg.Now()
	h.mu.Lock()
	for k, s := range h.sessions { // forget expired sessions
		if now.After(s.expires) {
			delete(h.sessions, k)
		}
	}
	h.sessions[id] = &session{csrf: randomToken(), user: user, expires: now.Add(h.cfg.SessionTTL)}
	h.mu.Unlock()
	path := cookiePath(r)
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: "", Path: path, MaxAge: -1})
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: id, Path: path, HttpOnly: true, Secure: secure(r), SameSite: http.SameSiteStrictMode, MaxAge: int(h.cfg.SessionTTL.Seconds())})
	http.Redirect(w, r, relative(r, "./"), http.StatusSeeOther)
}

// Failed logins from one address are limited: after maxFailedLogins within
// loginWindow, its logins are refused until the window passes.
const (
	maxFailedLogins = 10
	loginWindow     = 10 * time.Minute
)

// failures counts an address's failed logins since first.
type failures struct {
	n     int
	first time.Time
}

// remoteIP is the address of the client (the proxy's, behind one).
func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// throttled reports whether ip has failed too often lately.
func (h *Handler) throttled(ip string) bool {
	now := h.cfg.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	f, ok := h.failed[ip]
	if ok && now.Sub(f.first) >= loginWindow {
		delete(h.failed, ip)
		return false
	}
	return ok && f.n >= maxFailedLogins
}

// failedLogin counts a failed login of ip.
func (h *Handler) failedLogin(ip string) {
	now := h.cfg.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failed == nil {
		h.failed = map[string]*failures{}
	}
	for k, f := range h.failed { // forget old windows
		if now.Sub(f.first) >= loginWindow {
			delete(h.failed, k)
		}
	}
	f, ok := h.failed[ip]
	if !ok {
		f = &failures{first: now}
		h.failed[ip] = f
	}
	f.n++
}

// logout ends the session.
func (h *Handler) logout(w http.ResponseWriter, r *http.Request, c caller) {
	if c.session != "" {
		h.mu.Lock()
		delete(h.sessions, c.session)
		h.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: cookiePath(r), MaxAge: -1})
	http.Redirect(w, r, relative(r, "login"), http.StatusSeeOther)
}

// secure reports whether the browser reached the page over HTTPS, itself
// or through a proxy that terminates TLS, so that cookies are marked
// Secure. (A client that claims it falsely only loses its own cookies.)
func secure(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

// mountPrefix returns the path the handler is mounted at ("/" or
// "/admin/"): the request's original path less the path it was given
// (http.StripPrefix leaves RequestURI as it came).
func mountPrefix(r *http.Request) string {
	orig := r.URL.Path
	if u, err := url.ParseRequestURI(r.RequestURI); err == nil {
		orig = u.Path
	}
	p := strings.TrimSuffix(orig, r.URL.Path)
	return strings.TrimSuffix(p, "/") + "/"
}

// cookiePath scopes the cookies to the mount point.
func cookiePath(r *http.Request) string { return mountPrefix(r) }

// relative returns the URL of a page of the handler, target, for a
// redirect from r, whatever the mount point.
func relative(r *http.Request, target string) string {
	return mountPrefix(r) + strings.TrimPrefix(target, "./")
}
