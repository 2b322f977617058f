// Package admin is cqrsync's operator page: a plain [http.Handler],
// server-rendered with html/template and no JavaScript, that a service
// mounts next to its own routes or that `cqrsync admin --listen :8080`
// serves.
//
// # Pages
//
//   - Overview: the models on both sides, the outbox backlog, the
//     endpoints (passwords redacted).
//   - Models: master models (table, key, fields, wire names, tracked
//     fields) and replica models (table, key, mapping, handlers).
//   - Outbox: the backlog (events waiting, age of the oldest) and the
//     state of the relay running in this process, if any.
//   - Freshness: per model, the row count and the newest cqrs_updated of
//     the master and the replica table.
//   - Dead letters: the replica queue's dead letters grouped by model and
//     reason, with retry and purge of a group, as far as the transport's
//     [transport.Capabilities] allow.
//   - Sync: django-cqrs's admin action: select a master model's rows by a
//     filter or by keys, preview them, and send them as SYNC events to
//     every replica or to one queue, through the outbox (the code path of
//     `cqrsync sync`).
//
// # Security
//
// Nothing is served without credentials: [New] refuses a [Config] with
// neither a Token nor a Username and Password. A browser logs in on the
// login form and gets a session cookie (HttpOnly, SameSite=Strict); a
// script may send the token as "Authorization: Bearer" or the user and
// password as HTTP basic auth instead. After 10 failed logins in 10
// minutes an address is refused for the rest of the window. Every
// state-changing request (login,
// logout, retry, purge, sync) must be a POST carrying the page's CSRF token,
// compared in constant time, and an Origin (or Referer) header of the
// page's own host. Responses carry a strict Content-Security-Policy,
// X-Frame-Options DENY, nosniff and no-store. URLs are shown with their
// passwords redacted, and Config.Secrets are scrubbed from every error
// shown.
//
// # Mounting
//
//	h, err := admin.New(&admin.Config{Token: os.Getenv("ADMIN_TOKEN"), Master: master, MasterDB: drv, ...})
//	mux.Handle("/cqrs/", http.StripPrefix("/cqrs", h))
//
// Links are relative, so the page works under any prefix.
package admin
