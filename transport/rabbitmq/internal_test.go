package rabbitmq

import (
	"errors"
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/cqrsync/cqrsync/transport"
)

func TestBackoffDelay(t *testing.T) {
	t.Parallel()
	b := Backoff{Min: 100 * time.Millisecond, Max: time.Second}
	tests := []struct {
		attempt  int
		min, max time.Duration
	}{
		{0, 0, 0},
		{1, 50 * time.Millisecond, 100 * time.Millisecond},
		{2, 100 * time.Millisecond, 200 * time.Millisecond},
		{4, 400 * time.Millisecond, 800 * time.Millisecond},
		{5, 500 * time.Millisecond, time.Second},
		{1000, 500 * time.Millisecond, time.Second},
	}
	for _, tt := range tests {
		for range 100 {
			if d := b.delay(tt.attempt); d < tt.min || d > tt.max {
				t.Fatalf("delay(%d) = %v, want in [%v, %v]", tt.attempt, d, tt.min, tt.max)
			}
		}
	}
}

func TestRedactURL(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"amqp://user:s3cret@host:5672/vh", "amqp://user:xxxxx@host:5672/vh"},
		{"amqps://user:s3cret@host/", "amqps://user:xxxxx@host/"},
		{"amqp://host:5672/", "amqp://host:5672/"},
		{"amqp://user@host/", "amqp://user@host/"},
		{"amqp://us%40er:p%40ss%3Aword@host/", "amqp://us%40er:xxxxx@host/"},
		{"amqp://user:s3cret@host:bad port/", "<invalid URL>"},
	}
	for _, tt := range tests {
		if got := redactURL(tt.in); got != tt.want {
			t.Errorf("redactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestPublishingProperties(t *testing.T) {
	t.Parallel()
	cfg := (&Config{}).WithDefaults()
	tr := &Transport{cfg: cfg}

	tests := []struct {
		name    string
		tr      *Transport
		m       transport.Message
		wantExp string
		wantHdr amqp.Table
	}{
		{name: "broadcast", tr: tr, m: transport.Message{CQRSID: "a", Body: []byte("{}")}},
		{name: "direct", tr: tr, m: transport.Message{CQRSID: "a", Queue: "q", Body: []byte("{}")}},
		{name: "dead letter with the consumer's TTL", tr: tr, m: transport.Message{CQRSID: "a", Queue: "dead_letter_q", Expiration: 240 * time.Hour}, wantExp: "864000000"},
		{name: "no expiration unless the message has one", tr: tr, m: transport.Message{CQRSID: "a", Queue: "dead_letter_q"}},
		{name: "expiration", tr: tr, m: transport.Message{CQRSID: "a", Queue: "dead_letter_q", Expiration: 1500 * time.Millisecond}, wantExp: "1500"},
		{name: "sub-millisecond expiration", tr: tr, m: transport.Message{CQRSID: "a", Expiration: time.Microsecond}, wantExp: "1"},
		{name: "headers", tr: tr, m: transport.Message{CQRSID: "a", Headers: map[string]string{"reason": "x"}}, wantHdr: amqp.Table{"reason": "x"}},
		{name: "empty headers are absent", tr: tr, m: transport.Message{CQRSID: "a", Headers: map[string]string{}}},
	}
	for _, tt := range tests {
		p := tt.tr.publishing(&tt.m)
		want := amqp.Publishing{ContentType: "text/plain", DeliveryMode: 2, Body: tt.m.Body, Expiration: tt.wantExp, Headers: tt.wantHdr}
		if fmt.Sprintf("%#v", p) != fmt.Sprintf("%#v", want) {
			t.Errorf("%s: publishing = %#v, want %#v", tt.name, p, want)
		}
	}
}

func TestPermanent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		want bool
	}{
		{&amqp.Error{Code: amqp.PreconditionFailed}, true},
		{fmt.Errorf("wrapped: %w", &amqp.Error{Code: amqp.AccessRefused}), true},
		{&amqp.Error{Code: amqp.ConnectionForced}, false},
		{&amqp.Error{Code: amqp.NotFound}, false},
		{amqp.ErrClosed, false},
		{errors.New("other"), false},
	}
	for _, tt := range tests {
		if got := permanent(tt.err); got != tt.want {
			t.Errorf("permanent(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

func TestMessageFromDelivery(t *testing.T) {
	t.Parallel()
	d := &amqp.Delivery{RoutingKey: "cqrs.replica.account", Body: []byte("x"), Headers: amqp.Table{"s": "v", "n": int32(3)}, Expiration: "5"}
	m := message(d)
	if m.CQRSID != "account" || m.Queue != "replica" || string(m.Body) != "x" || m.Expiration != 0 {
		t.Errorf("message = %+v", m)
	}
	if m.Headers["s"] != "v" || m.Headers["n"] != "3" {
		t.Errorf("headers = %v", m.Headers)
	}
	if m := message(&amqp.Delivery{RoutingKey: "account"}); m.CQRSID != "account" || m.Queue != "" || m.Headers != nil {
		t.Errorf("broadcast message = %+v", m)
	}
}
