package rabbitmq_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/internal/testenv"
	"github.com/cqrsync/cqrsync/transport"
	"github.com/cqrsync/cqrsync/transport/amqptopology"
)

// vectorsDir finds the django-cqrs vectors (testdata/interop/vectors).
func vectorsDir(t *testing.T) string { return cqrsynctesting.VectorsDir(t) }

// vectorMessage is one message captured from django-cqrs.
type vectorMessage struct {
	where      string // file and JSON path, for failures
	routingKey string
	body       string
	properties map[string]any // nil when the vector did not record them
}

// loadVectorMessages walks every vector file for objects with a body (or a
// published_body) and a routing_key.
func loadVectorMessages(t *testing.T, dir string) []vectorMessage {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no vector files in %s (%v)", dir, err)
	}
	var out []vectorMessage
	var walk func(file, path string, v any)
	walk = func(file, path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			key, _ := v["routing_key"].(string)
			body, ok := v["body"].(string)
			if !ok {
				body, ok = v["published_body"].(string)
			}
			if key != "" && ok {
				props, _ := v["properties"].(map[string]any)
				out = append(out, vectorMessage{where: filepath.Base(file) + path, routingKey: key, body: body, properties: props})
			}
			keys := make([]string, 0, len(v))
			for k := range v {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				walk(file, path+"."+k, v[k])
			}
		case []any:
			for i, e := range v {
				walk(file, path+"["+strconv.Itoa(i)+"]", e)
			}
		}
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		walk(f, "", v)
	}
	return out
}

// TestInteropMessages publishes every message body captured from
// django-cqrs through the broker and checks that what arrives has the same
// bytes, routing key and AMQP properties as django-cqrs's message.
func TestInteropMessages(t *testing.T) {
	t.Parallel()
	vectors := loadVectorMessages(t, vectorsDir(t))
	if len(vectors) < 50 {
		t.Fatalf("found only %d vector messages", len(vectors))
	}
	b := setup(t)
	tap := b.boundQueue(t, "#")
	tr := b.newTransport(t, "", nil)

	msgs := make([]transport.Message, len(vectors))
	deadLetters := 0
	for i, v := range vectors {
		id, q := amqptopology.ParseRoutingKey(v.routingKey)
		msgs[i] = transport.Message{CQRSID: id, Queue: q, Body: []byte(v.body)}
		if got := amqptopology.RoutingKey(&msgs[i]); got != v.routingKey {
			t.Fatalf("%s: routing key %q parsed and rebuilt as %q", v.where, v.routingKey, got)
		}
		if strings.HasPrefix(q, "dead_letter_") {
			// As the consumer publishes dead letters: with django-cqrs's
			// default dead-letter TTL.
			msgs[i].Expiration = cqrsync.DefaultDeadLetterTTL
			deadLetters++
		}
	}
	if deadLetters == 0 {
		t.Fatal("no dead letters among the vectors")
	}
	if err := tr.Publish(testContext(t), msgs); err != nil {
		t.Fatalf("Publish: %v", err)
	}

	for i, d := range b.drain(t, tap, len(vectors)) {
		v := vectors[i]
		if string(d.Body) != v.body {
			t.Errorf("%s: body differs:\n got %q\nwant %q", v.where, d.Body, v.body)
		}
		if d.RoutingKey != v.routingKey || d.Exchange != b.exchange {
			t.Errorf("%s: routing key %q on %q, want %q", v.where, d.RoutingKey, d.Exchange, v.routingKey)
		}
		want := v.properties
		if want == nil { // a hand-made message: django-cqrs's defaults
			want = map[string]any{"content_type": "text/plain", "delivery_mode": float64(2)}
			if strings.HasPrefix(v.routingKey, "cqrs.dead_letter_") {
				want["expiration"] = "864000000"
			}
		}
		got := deliveryProperties(&d)
		for _, k := range []string{"content_type", "content_encoding", "headers", "delivery_mode", "priority", "correlation_id",
			"reply_to", "expiration", "message_id", "timestamp", "type", "user_id", "app_id"} {
			if g, w := got[k], want[k]; !equalJSON(g, w) {
				t.Errorf("%s: property %s = %v, want %v", v.where, k, g, w)
			}
		}
	}
	t.Logf("%d django-cqrs messages (%d dead letters) matched byte for byte", len(vectors), deadLetters)
}

// deliveryProperties renders d's AMQP properties like the vectors do: null
// (nil) when absent.
func deliveryProperties(d *amqp.Delivery) map[string]any {
	p := map[string]any{}
	set := func(k, v string) {
		if v != "" {
			p[k] = v
		}
	}
	set("content_type", d.ContentType)
	set("content_encoding", d.ContentEncoding)
	set("correlation_id", d.CorrelationId)
	set("reply_to", d.ReplyTo)
	set("expiration", d.Expiration)
	set("message_id", d.MessageId)
	set("type", d.Type)
	set("user_id", d.UserId)
	set("app_id", d.AppId)
	if d.Headers != nil {
		p["headers"] = map[string]any(d.Headers)
	}
	if d.DeliveryMode != 0 {
		p["delivery_mode"] = float64(d.DeliveryMode)
	}
	if d.Priority != 0 {
		p["priority"] = float64(d.Priority)
	}
	if !d.Timestamp.IsZero() {
		p["timestamp"] = d.Timestamp.Unix()
	}
	return p
}

func equalJSON(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// TestInteropTopology subscribes as the captured django-cqrs replica did
// (same CQRS IDs) and compares what the broker holds with topology.json:
// exchange, queues, bindings and consumer, with the names mapped.
func TestInteropTopology(t *testing.T) {
	testenv.Slow(t, "reads the topology through rabbitmqctl")
	t.Parallel()
	dir := vectorsDir(t)
	raw, err := os.ReadFile(filepath.Join(dir, "topology.json"))
	if err != nil {
		t.Fatal(err)
	}
	type table struct {
		Columns []string   `json:"columns"`
		Rows    [][]string `json:"rows"`
	}
	var topo struct {
		Exchanges, Queues, Bindings, Consumers table
	}
	if err := json.Unmarshal(raw, &topo); err != nil {
		t.Fatal(err)
	}
	const djQueue, djExchange = "djpeer_replica", "cqrs"
	var ids []string
	for _, row := range topo.Bindings.Rows {
		if row[0] == djExchange && row[2] == djQueue && !strings.HasPrefix(row[4], "cqrs.") {
			ids = append(ids, row[4])
		}
	}
	if len(ids) == 0 {
		t.Fatal("no CQRS IDs found in topology.json")
	}

	b := setup(t)
	q := b.queue()
	dlq := transport.DeadLetterQueue(q)
	tr := b.newTransport(t, "", nil)
	subscribe(t, tr, &transport.SubscribeParams{Queue: q, CQRSIDs: ids})

	// The broker accepts django-cqrs's exact declarations as equivalent
	// (a difference in any flag or argument would be PRECONDITION_FAILED).
	ch := b.channel(t)
	if err := ch.ExchangeDeclare(b.exchange, "topic", true, false, false, false, nil); err != nil {
		t.Fatalf("django-cqrs's exchange declaration refused: %v", err)
	}
	for _, name := range []string{q, dlq} {
		if _, err := ch.QueueDeclare(name, true, false, false, false, nil); err != nil {
			t.Fatalf("django-cqrs's declaration of queue %s refused: %v", name, err)
		}
	}

	ctl := rabbitmqctl(t, "bindings not compared with topology.json (the AMQP declarations matched)")
	rename := strings.NewReplacer(dlq, "dead_letter_"+djQueue, q, djQueue, b.exchange, djExchange)
	ours := func(name string) bool { return name == q || name == dlq || name == b.exchange }

	var wg sync.WaitGroup
	check := func(what string, tab table, args []string, key int) {
		defer wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		out, err := exec.CommandContext(ctx, ctl, append([]string{"-q", "--no-table-headers", what}, args...)...).Output()
		if err != nil {
			t.Errorf("rabbitmqctl %s: %v", what, err)
			return
		}
		var got []string
		for line := range strings.Lines(string(out)) {
			f := strings.Split(strings.TrimRight(line, "\n"), "\t")
			if len(f) > key && ours(f[key]) {
				got = append(got, rename.Replace(strings.Join(f, "\t")))
			}
		}
		var want []string
		for _, row := range tab.Rows {
			want = append(want, strings.Join(row, "\t"))
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s differs from topology.json:\n got %q\nwant %q", what, got, want)
		}
	}
	wg.Add(4)
	go check("list_exchanges", topo.Exchanges, topo.Exchanges.Columns, 0)
	go check("list_queues", topo.Queues, topo.Queues.Columns, 0)
	go check("list_bindings", topo.Bindings, topo.Bindings.Columns, 2)
	go check("list_consumers", topo.Consumers, topo.Consumers.Columns, 0)
	wg.Wait()
}
