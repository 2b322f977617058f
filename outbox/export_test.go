package outbox

// Looks returns how many times r's run loop looked for events.
func Looks(r *Relay) int64 { return r.looks.Load() }
