package admin

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/transport"
)

// pageTimeout bounds the database and broker work of one page.
const pageTimeout = 30 * time.Second

// layout is what every page's template gets.
type layout struct {
	Title, Page, User, CSRF string
	Refresh                 int
	Flash                   *flash
	Data                    any
}

func (h *Handler) parseTemplates() error {
	funcs := template.FuncMap{
		"age":  func(t time.Time) string { return age(h.cfg.Now(), t) },
		"when": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 MST") },
		"join": strings.Join,
	}
	h.pages = map[string]*template.Template{}
	for _, name := range []string{"login", "error", "overview", "models", "outbox", "freshness", "dead-letters", "sync"} {
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return fmt.Errorf("admin: templates: %w", err)
		}
		h.pages[name] = t
	}
	return nil
}

// render writes a page. A GET with ?refresh=N (1 to 60) reloads itself
// every N seconds, without JavaScript.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, page string, c caller, data any) {
	l := &layout{Title: h.cfg.Title, Page: page, User: c.user, CSRF: c.csrf, Data: data}
	q := r.URL.Query()
	if n, err := strconv.Atoi(q.Get("refresh")); err == nil && r.Method == http.MethodGet {
		l.Refresh = min(max(n, 1), 60)
	}
	if id := q.Get("flash"); id != "" {
		l.Flash = h.takeFlash(id)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := h.pages[page].ExecuteTemplate(w, "layout", l); err != nil {
		h.log.Error("cqrsync admin: render", "page", page, "error", err)
	}
}

// age says how long ago t was, to the second.
func age(now, t time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := max(now.Sub(t), 0)
	switch {
	case d < time.Second:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds ago", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm ago", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

// userInfoRE finds the password of a DSN that is not a URL
// (user:password@tcp(host)/db).
var userInfoRE = regexp.MustCompile(`^([^:@/]*):[^@]*@`)

// Redact returns a URL or DSN with its password replaced by "xxxxx".
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || !strings.Contains(raw, "://") {
		return userInfoRE.ReplaceAllString(raw, "${1}:xxxxx@")
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

type overviewData struct {
	Endpoints              []Endpoint
	MasterModels, Replicas []string
	Queue                  string
	Backlog                *backlog
}

func (h *Handler) overview(w http.ResponseWriter, r *http.Request, c caller) {
	ctx, cancel := context.WithTimeout(r.Context(), pageTimeout)
	defer cancel()
	d := &overviewData{Queue: h.cfg.Queue, Backlog: h.backlog(ctx)}
	for _, e := range h.cfg.Endpoints {
		d.Endpoints = append(d.Endpoints, Endpoint{Name: e.Name, URL: h.scrub(Redact(e.URL))})
	}
	if h.cfg.Master != nil {
		d.MasterModels = h.cfg.Master.Models()
	}
	if h.cfg.Replica != nil {
		d.Replicas = h.cfg.Replica.Models()
	}
	h.render(w, r, "overview", c, d)
}

type masterView struct {
	CQRSID, Table, PK, Fields, TTL string
	WireNames, Tracked, Custom     []string
	NoProduce                      bool
}

type replicaView struct {
	CQRSID, Table, PK string
	Mapping, Flags    []string
}

type modelsData struct {
	Masters  []masterView
	Replicas []replicaView
	HasM     bool
	HasR     bool
}

func (h *Handler) models(w http.ResponseWriter, r *http.Request, c caller) {
	d := &modelsData{HasM: h.cfg.Master != nil, HasR: h.cfg.Replica != nil}
	if h.cfg.Master != nil {
		for _, id := range h.cfg.Master.Models() {
			mm, ok := h.cfg.Master.Model(id)
			if !ok {
				continue
			}
			v := masterView{CQRSID: id, Table: mm.Table, PK: cmp.Or(mm.PK, "id"), Fields: "every column", Tracked: mm.TrackedFields, NoProduce: mm.NoProduce}
			if len(mm.Fields) > 0 {
				v.Fields = strings.Join(mm.Fields, ", ")
			}
			for _, col := range slices.Sorted(maps.Keys(mm.FieldNames)) {
				v.WireNames = append(v.WireNames, col+" → "+mm.FieldNames[col])
			}
			if mm.MessageTTL != 0 {
				v.TTL = mm.MessageTTL.String()
			}
			for name, set := range map[string]bool{"serializer": mm.Serializer != nil, "sync check": mm.IsSyncInstance != nil, "meta": mm.Meta != nil, "custom delete data": mm.CustomDeleteData != nil} {
				if set {
					v.Custom = append(v.Custom, name)
				}
			}
			slices.Sort(v.Custom)
			d.Masters = append(d.Masters, v)
		}
	}
	if h.cfg.Replica != nil {
		for _, id := range h.cfg.Replica.Models() {
			rm, ok := h.cfg.Replica.Model(id)
			if !ok {
				continue
			}
			v := replicaView{CQRSID: id, Table: rm.Table, PK: cmp.Or(rm.PK, "id")}
			for _, f := range slices.Sorted(maps.Keys(rm.Mapping)) {
				v.Mapping = append(v.Mapping, f+" → "+rm.Mapping[f])
			}
			for name, set := range map[string]bool{"custom handlers": rm.OnSave != nil || rm.OnDelete != nil, "no DB operations": rm.NoDBOperations, "only direct syncs": rm.OnlyDirectSyncs, "select for update": rm.SelectForUpdate, "meta": rm.Meta} {
				if set {
					v.Flags = append(v.Flags, name)
				}
			}
			slices.Sort(v.Flags)
			d.Replicas = append(d.Replicas, v)
		}
	}
	h.render(w, r, "models", c, d)
}

// backlog is the outbox's state.
type backlog struct {
	Known     bool   // a master database is configured
	WALSlot   string // the outbox is the WAL, through this slot
	Rows      int64
	Oldest    time.Time
	Err       string
	Relay     string // "" when no relay runs in this process
	Published int64
}

func (h *Handler) backlog(ctx context.Context) *backlog {
	b := &backlog{}
	if h.cfg.MasterDB == nil {
		return b
	}
	b.Known = true
	if b.WALSlot = h.cfg.WALSlot; b.WALSlot != "" {
		return b
	}
	st, err := h.cfg.MasterDB.Dialect().OutboxStats(ctx, h.cfg.MasterDB.Pool())
	if err != nil {
		b.Err = h.scrub(err.Error())
	} else {
		b.Rows, b.Oldest = st.Rows, st.Oldest
	}
	if rl := h.cfg.Relay; rl != nil {
		b.Relay = "not running"
		select {
		case <-rl.Started():
			b.Relay = "running"
		default:
		}
		b.Published = rl.Published()
	}
	return b
}

func (h *Handler) outbox(w http.ResponseWriter, r *http.Request, c caller) {
	ctx, cancel := context.WithTimeout(r.Context(), pageTimeout)
	defer cancel()
	h.render(w, r, "outbox", c, h.backlog(ctx))
}

// tableState is a table's freshness.
type tableState struct {
	Side, CQRSID, Table string
	Rows                int64
	Newest              time.Time
	Err                 string
	// Behind, on a replica row of a service that is also the model's
	// master, says how far its newest change trails the master's.
	Behind string
}

func (h *Handler) freshness(w http.ResponseWriter, r *http.Request, c caller) {
	ctx, cancel := context.WithTimeout(r.Context(), pageTimeout)
	defer cancel()
	var out []tableState
	if h.cfg.Master != nil {
		for _, id := range h.cfg.Master.Models() {
			if mm, ok := h.cfg.Master.Model(id); ok {
				out = append(out, h.tableState(ctx, h.cfg.MasterDB, "master", id, mm.Table))
			}
		}
	}
	if rp := h.cfg.Replica; rp != nil {
		for _, id := range rp.Models() {
			rm, ok := rp.Model(id)
			if !ok {
				continue
			}
			if rm.NoDBOperations {
				out = append(out, tableState{Side: "replica", CQRSID: id, Err: "no table (custom handlers only)"})
				continue
			}
			st := h.tableState(ctx, rp.DB(), "replica", id, rm.Table)
			for _, m := range out {
				if m.Side == "master" && m.CQRSID == id && m.Err == "" && st.Err == "" {
					st.Behind = behind(m, st)
				}
			}
			out = append(out, st)
		}
	}
	h.render(w, r, "freshness", c, out)
}

// behind says how far a replica table trails its master table.
func behind(master, replica tableState) string {
	switch {
	case master.Newest.IsZero():
		return ""
	case replica.Newest.IsZero():
		return "has no rows yet"
	case !replica.Newest.Before(master.Newest):
		return "up to date"
	}
	return master.Newest.Sub(replica.Newest).Round(time.Millisecond).String() + " behind"
}

// tableState counts a table's rows and reads its newest cqrs_updated.
func (h *Handler) tableState(ctx context.Context, db sqldialect.DB, side, cqrsID, table string) tableState {
	st := tableState{Side: side, CQRSID: cqrsID, Table: table}
	d := db.Dialect()
	rows, err := db.Pool().Query(ctx, "SELECT COUNT(*), MAX("+d.QuoteIdent("cqrs_updated")+") FROM "+d.QuoteIdent(table))
	if err != nil {
		st.Err = h.scrub(err.Error())
		return st
	}
	defer rows.Close()
	var newest any
	if rows.Next() {
		if err := rows.Scan(&st.Rows, &newest); err != nil {
			st.Err = h.scrub(err.Error())
			return st
		}
	}
	if err := rows.Err(); err != nil {
		st.Err = h.scrub(err.Error())
	}
	st.Newest = asTime(newest)
	return st
}

// asTime reads a timestamp as a driver returns it: a time.Time, or text
// (SQLite).
func asTime(v any) time.Time {
	switch t := v.(type) {
	case time.Time:
		return t
	case []byte:
		return asTime(string(t))
	case string:
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999"} {
			if p, err := time.Parse(layout, t); err == nil {
				return p
			}
		}
	}
	return time.Time{}
}

// deadLetterGroup counts the dead letters of a model and a reason.
type deadLetterGroup struct {
	CQRSID, Reason string
	Count          int
}

// deadLetterView is one dead letter as listed.
type deadLetterView struct {
	CQRSID, PK, Signal, Reason, At, Body string
}

type deadLettersData struct {
	Problem             string // why dead letters cannot be shown
	Queue, DLQ          string
	CanRemove, CanRetry bool
	RemoveNote          string
	Groups              []deadLetterGroup
	Models              []string
	Total, Matching     int
	Capped              bool
	CQRSID, Reason      string
	AnyReason           bool
	Messages            []deadLetterView
}

// browseLimit bounds how many dead letters one page visits.
const browseLimit = 10000

// listLimit bounds how many dead letters one page lists.
const listLimit = 100

var errBrowseFull = errors.New("admin: browse limit")

func (h *Handler) dlq() string {
	return cmp.Or(h.cfg.DeadLetterQueue, transport.DeadLetterQueue(h.cfg.Queue))
}

func (h *Handler) deadLetters(w http.ResponseWriter, r *http.Request, c caller) {
	ctx, cancel := context.WithTimeout(r.Context(), pageTimeout)
	defer cancel()
	q := r.URL.Query()
	d := &deadLettersData{Queue: h.cfg.Queue, DLQ: h.dlq(), CQRSID: q.Get("cqrs_id"), Reason: q.Get("reason"), AnyReason: !q.Has("reason")}
	dl := h.cfg.DeadLetters
	switch {
	case dl == nil:
		d.Problem = "No broker is configured for this page (Config.DeadLetters)."
	case h.cfg.Queue == "":
		d.Problem = "No replica queue is configured (Config.Queue): there are no dead letters to show."
	case !dl.Capabilities().DeadLetterBrowse:
		d.Problem = "This broker's transport cannot list dead letters without consuming them."
	}
	if d.Problem != "" {
		h.render(w, r, "dead-letters", c, d)
		return
	}
	caps := dl.Capabilities()
	d.CanRemove = caps.DeadLetterRemove
	d.CanRetry = caps.DeadLetterRemove && h.cfg.Publisher != nil
	switch {
	case !caps.DeadLetterRemove:
		d.RemoveNote = "This transport keeps dead letters on an append-only log: it cannot remove one, so retry and purge are off. Re-publish them with the transport's own tools, or let its retention expire them."
	case h.cfg.Publisher == nil:
		d.RemoveNote = "No publisher is configured (Config.Publisher): dead letters can be purged but not retried."
	}
	groups := map[deadLetterGroup]int{}
	models := map[string]bool{}
	err := dl.BrowseDeadLetters(ctx, d.DLQ, func(_ context.Context, m *transport.Message) error {
		if d.Total >= browseLimit {
			d.Capped = true
			return errBrowseFull
		}
		d.Total++
		reason := reasonOf(m)
		groups[deadLetterGroup{CQRSID: m.CQRSID, Reason: reason}]++
		models[m.CQRSID] = true
		if (d.CQRSID != "" && m.CQRSID != d.CQRSID) || (!d.AnyReason && reason != d.Reason) {
			return nil
		}
		d.Matching++
		if len(d.Messages) < listLimit {
			d.Messages = append(d.Messages, viewDeadLetter(m))
		}
		return nil
	})
	if err != nil && !errors.Is(err, errBrowseFull) {
		d.Problem = "Listing the dead letters failed: " + h.scrub(err.Error())
	}
	for g, n := range groups {
		g.Count = n
		d.Groups = append(d.Groups, g)
	}
	slices.SortFunc(d.Groups, func(a, b deadLetterGroup) int {
		return cmp.Or(cmp.Compare(a.CQRSID, b.CQRSID), cmp.Compare(b.Count, a.Count), cmp.Compare(a.Reason, b.Reason))
	})
	d.Models = slices.Sorted(maps.Keys(models))
	h.render(w, r, "dead-letters", c, d)
}

// viewDeadLetter reads what a list shows of a dead letter.
func viewDeadLetter(m *transport.Message) deadLetterView {
	v := deadLetterView{CQRSID: m.CQRSID, Reason: reasonOf(m), At: deadLetteredAt(m), Body: string(m.Body)}
	var p struct {
		Signal string `json:"signal_type"`
		PK     any    `json:"instance_pk"`
	}
	if json.Unmarshal(m.Body, &p) == nil {
		v.Signal = p.Signal
		if p.PK != nil {
			v.PK = fmt.Sprint(p.PK)
		}
	}
	if len(v.Body) > 400 {
		v.Body = v.Body[:400] + "…"
	}
	return v
}

// deadLetterAction retries or purges the dead letters of a model and a
// reason.
func (h *Handler) deadLetterAction(w http.ResponseWriter, r *http.Request, c caller) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Minute)
	defer cancel()
	dl := h.cfg.DeadLetters
	cqrsID, reason := r.PostFormValue("cqrs_id"), r.PostFormValue("reason")
	anyReason := r.PostFormValue("any_reason") == "1"
	back := url.Values{}
	if cqrsID != "" {
		back.Set("cqrs_id", cqrsID)
	}
	if !anyReason {
		back.Set("reason", reason)
	}
	what := "dead letters"
	if cqrsID != "" {
		what += " of " + cqrsID
	}
	if !anyReason {
		what += fmt.Sprintf(" with reason %q", cmp.Or(reason, "(none)"))
	}
	var msg string
	var failed error
	switch action := r.PostFormValue("action"); {
	case dl == nil || h.cfg.Queue == "":
		failed = errors.New("no broker or replica queue is configured for this page")
	case !dl.Capabilities().DeadLetterRemove:
		failed = fmt.Errorf("this transport cannot remove dead letters: %w", transport.ErrNotSupported)
	case action == "retry":
		if h.cfg.Publisher == nil {
			failed = errors.New("no publisher is configured (Config.Publisher): dead letters cannot be retried")
			break
		}
		n, err := retryDeadLetters(ctx, dl, h.cfg.Publisher, h.cfg.Queue, h.dlq(), deadLetterFilter(cqrsID, reason, anyReason))
		msg, failed = fmt.Sprintf("Sent %d %s back to queue %s.", n, what, h.cfg.Queue), err
	case action == "purge":
		n, err := purgeDeadLetters(ctx, dl, h.dlq(), deadLetterFilter(cqrsID, reason, anyReason))
		msg, failed = fmt.Sprintf("Purged %d %s.", n, what), err
	default:
		failed = fmt.Errorf("unknown action %q: use retry or purge", action)
	}
	if failed != nil {
		h.log.Warn("cqrsync admin: dead-letter action failed", "error", failed)
		msg = strings.TrimSpace(msg + " Failed: " + h.scrub(failed.Error()))
	}
	back.Set("flash", h.putFlash(msg, failed != nil))
	http.Redirect(w, r, relative(r, "dead-letters?"+back.Encode()), http.StatusSeeOther)
}

type syncData struct {
	Problem              string
	Models               []string
	CQRSID, Filter, Keys string
	Queue                string
	Preview              bool
	Rows                 []string
	Count                int
	More                 bool
	Err                  string
	RelayHere            bool
}

// previewShow and previewCount bound the sync preview.
const (
	previewShow  = 20
	previewCount = 10000
)

func (h *Handler) syncForm(w http.ResponseWriter, r *http.Request, c caller) {
	q := r.URL.Query()
	d := &syncData{CQRSID: q.Get("cqrs_id"), Filter: q.Get("filter"), Keys: q.Get("keys"), Queue: q.Get("queue"), RelayHere: h.cfg.Relay != nil}
	if h.cfg.Master == nil {
		d.Problem = "No master models are configured (Config.Master): there is nothing to sync from this service."
		h.render(w, r, "sync", c, d)
		return
	}
	d.Models = h.cfg.Master.Models()
	if q.Has("preview") {
		d.Preview = true
		ctx, cancel := context.WithTimeout(r.Context(), pageTimeout)
		defer cancel()
		filter, err := h.syncFilter(d.CQRSID, d.Filter, d.Keys)
		if err == nil {
			d.Rows, d.Count, d.More, err = previewRows(ctx, h.cfg.Master, h.cfg.MasterDB.Pool(), d.CQRSID, filter, previewShow, previewCount)
		}
		if err != nil {
			d.Err = h.scrub(err.Error())
		}
	}
	h.render(w, r, "sync", c, d)
}

// syncFilter returns the filter of a sync: the filter given, or the keys
// (comma- or space-separated) as {"<pk>__in": [...]}.
func (h *Handler) syncFilter(cqrsID, filter, keys string) (string, error) {
	mm, ok := h.cfg.Master.Model(cqrsID)
	if !ok {
		return "", fmt.Errorf("choose a master model (registered: %s)", strings.Join(h.cfg.Master.Models(), ", "))
	}
	filter, keys = strings.TrimSpace(filter), strings.TrimSpace(keys)
	if filter != "" && keys != "" {
		return "", errors.New("give a filter or keys, not both")
	}
	if keys == "" {
		return filter, nil
	}
	var list []any
	for k := range strings.FieldsFuncSeq(keys, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\t' || r == '\r' }) {
		if n, err := strconv.ParseInt(k, 10, 64); err == nil {
			list = append(list, n)
		} else {
			list = append(list, k)
		}
	}
	b, err := json.Marshal(map[string]any{cmp.Or(mm.PK, "id") + "__in": list})
	return string(b), err
}

func (h *Handler) syncAction(w http.ResponseWriter, r *http.Request, c caller) {
	cqrsID, queue := r.PostFormValue("cqrs_id"), strings.TrimSpace(r.PostFormValue("queue"))
	back := url.Values{"cqrs_id": {cqrsID}}
	var msg string
	var failed error
	if h.cfg.Master == nil {
		failed = errors.New("no master models are configured")
	} else if filter, err := h.syncFilter(cqrsID, r.PostFormValue("filter"), r.PostFormValue("keys")); err != nil {
		failed = err
	} else {
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Minute)
		defer cancel()
		n, err := syncRows(ctx, h.cfg.Master, h.cfg.MasterDB.Pool(), cqrsID, filter, queue)
		target := "every replica queue"
		if queue != "" {
			target = "queue " + queue
		}
		msg, failed = fmt.Sprintf("Enqueued %d SYNC event(s) of %s for %s.", n, cqrsID, target), err
		if n > 0 {
			if h.cfg.Relay != nil {
				h.cfg.Relay.Wake()
				msg += " The relay of this process is sending them: watch the outbox drain."
			} else {
				msg += " They wait in the outbox for the service's relay (cqrsync relay)."
			}
		}
	}
	if failed != nil {
		h.log.Warn("cqrsync admin: sync failed", "cqrs_id", cqrsID, "error", failed)
		msg = strings.TrimSpace(msg + " Failed: " + h.scrub(failed.Error()))
	}
	back.Set("flash", h.putFlash(msg, failed != nil))
	http.Redirect(w, r, relative(r, "sync?"+back.Encode()), http.StatusSeeOther)
}

// flash is the outcome of an action, shown once on the page the action
// redirects to.
type flash struct {
	Message string
	Failed  bool
	expires time.Time
}

func (h *Handler) putFlash(msg string, failed bool) string {
	id := randomToken()[:24]
	now := h.cfg.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.flashes == nil {
		h.flashes = map[string]*flash{}
	}
	for k, f := range h.flashes {
		if now.After(f.expires) {
			delete(h.flashes, k)
		}
	}
	h.flashes[id] = &flash{Message: msg, Failed: failed, expires: now.Add(10 * time.Minute)}
	return id
}

func (h *Handler) takeFlash(id string) *flash {
	h.mu.Lock()
	defer h.mu.Unlock()
	f := h.flashes[id]
	delete(h.flashes, id)
	return f
}
