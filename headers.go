package cqrsync

// HeaderDeadLetteredAt is the transport header that records when a message
// was dead-lettered (RFC 3339, UTC), for selecting dead letters by age.
const HeaderDeadLetteredAt = "x-cqrsync-dead-lettered-at"

// HeaderBroadcast marks an event that the master broadcast to every queue
// and that the replica later sent to its own queue alone: a retry, or a dead
// letter and its retry. The route of such a copy says "this queue", and
// without the mark a broadcast SYNC would come back as a one-queue SYNC,
// which overwrites a newer row (see SignalSync). django-cqrs ignores it.
const HeaderBroadcast = "x-cqrsync-broadcast"

// HeaderReplayed marks an event that tools.RetryDeadLetters sent again: its
// retries start again at 0, and the mark keeps a one-queue SYNC among the
// copies that apply only if not older (see SignalSync).
const HeaderReplayed = "x-cqrsync-replayed"

// broadcastHeaders returns headers with HeaderBroadcast set when p came
// broadcast, for a copy of it sent to one queue.
func broadcastHeaders(p *Payload, headers map[string]string) map[string]string {
	if p == nil || p.Queue != "" {
		return headers
	}
	if headers == nil {
		headers = map[string]string{}
	}
	headers[HeaderBroadcast] = "1"
	return headers
}
