package outbox

import "time"

// Looks returns how many times r's run loop looked for events.
func Looks(r *Relay) int64 { return r.looks.Load() }

// SetWaiting makes r call fn with every wait of its run loop; call it before
// Start.
func SetWaiting(r *Relay, fn func(time.Duration)) { r.waiting = fn }
