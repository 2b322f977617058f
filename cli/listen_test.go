package cli_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/cli"
	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/internal/testenv"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
	"github.com/cqrsync/cqrsync/transport/rabbitmq"
)

// listenAddr waits for the --listen line of a command and returns its base
// URL.
func listenAddr(t *testing.T, bg *background) string {
	t.Helper()
	bg.waitFor(t, "serving /metrics, /healthz and /readyz on ")
	m := regexp.MustCompile(`on (http://[0-9.:]+)\n`).FindStringSubmatch(bg.errOut.String())
	if m == nil {
		t.Fatalf("no address in %q", bg.errOut.String())
	}
	return m[1]
}

// get returns the status code and body of GET url.
func get(t *testing.T, url string) (int, string) { t.Helper(); return cqrsynctesting.Get(t, url) }

// TestRelayListenServesMetrics: relay --listen serves the outbox backlog
// and the relay's counters on /metrics, and is live and ready.
func TestRelayListenServesMetrics(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.loadMaster(t)
	r := run(t, b.master, "", "sync", "-c", "djpeer_basic", "--no-wait")
	r.ok(t)
	// Nobody consumes the broadcast: declare the queue so events route.
	if err := b.broker.DeclareQueue(b.queue, "djpeer_basic"); err != nil {
		t.Fatal(err)
	}
	bg := start(t, b.master, "relay", "--listen", "127.0.0.1:0")
	base := listenAddr(t, bg)
	if code, body := get(t, base+"/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Fatalf("/healthz: %d %q", code, body)
	}
	eventually(t, "the relay ready and the outbox drained in /metrics", func() bool {
		code, _ := get(t, base+"/readyz")
		_, metrics := get(t, base+"/metrics")
		return code == http.StatusOK && strings.Contains(metrics, "\ncqrsync_outbox_backlog_rows 0\n") &&
			strings.Contains(metrics, "\ncqrsync_relay_published_events_total 22\n")
	})
	_, body := get(t, base+"/readyz")
	for _, want := range []string{"started: ok", "database: ok", "broker: ok"} {
		if !strings.Contains(body, want) {
			t.Errorf("/readyz body %q lacks %q", body, want)
		}
	}
	bg.stop().ok(t)
}

// TestConsumeReadyFollowsBroker: consume --listen reports ready while
// RabbitMQ answers, not ready (503, naming the broker) while a proxy cuts
// it off, and ready again once it is back; /healthz stays 200 throughout,
// and /metrics shows the queue's depth.
func TestConsumeReadyFollowsBroker(t *testing.T) {
	t.Parallel()
	amqpURL := testenv.AMQPURL(t)
	u, err := url.Parse(amqpURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := cqrsynctesting.NewProxy(t, u.Host)
	exchange, queue := cqrsynctesting.UniqueName("cqrsynctest_listen_x_"), cqrsynctesting.UniqueName("cqrsynctest_listen_q_")
	t.Cleanup(func() { cqrsynctesting.DeleteRabbitMQ(amqpURL, exchange, queue) })
	db := cqrsynctesting.OpenSQLite(t, replicaBasicDDL)
	opts := &cli.Options{Setup: func(_ context.Context, req *cli.SetupRequest) (*cli.App, error) {
		replica, err := cqrsync.NewReplica(databasesql.New(db, sqldialect.SQLite()), &cqrsync.ReplicaConfig{Logger: req.Logger})
		if err != nil {
			return nil, err
		}
		if err := replica.Register(&cqrsync.ReplicaModel{CQRSID: "djpeer_basic", Table: "djpeer_basic", Types: basicTypes}); err != nil {
			return nil, err
		}
		return &cli.App{DB: db, Dialect: sqldialect.SQLite(), Replica: replica, Queue: queue,
			OpenTransport: func(ctx context.Context) (*cli.Transport, error) {
				tr, err := rabbitmq.New(ctx, &rabbitmq.Config{URL: proxy.URL(t, amqpURL), Exchange: exchange,
					ReconnectBackoff: rabbitmq.Backoff{Min: 10 * time.Millisecond, Max: 200 * time.Millisecond},
					Logger:           slog.New(slog.NewTextHandler(io.Discard, nil))})
				if err != nil {
					return nil, err
				}
				return &cli.Transport{Publisher: tr, Subscriber: tr, DeadLetters: tr, Close: tr.Close}, nil
			}}, nil
	}}
	bg := start(t, opts, "consume", "--listen", "127.0.0.1:0")
	base := listenAddr(t, bg)
	bg.waitFor(t, "consuming queue")
	ready := func(want int) func() bool {
		return func() bool { code, _ := get(t, base+"/readyz"); return code == want }
	}
	eventually(t, "ready", ready(http.StatusOK))
	if _, metrics := get(t, base+"/metrics"); !strings.Contains(metrics, `cqrsync_broker_queue_depth{queue="`+queue+`"} 0`) {
		t.Errorf("/metrics lacks the queue's depth:\n%s", metrics)
	}

	proxy.Cut()
	eventually(t, "not ready while the broker is cut off", ready(http.StatusServiceUnavailable))
	if _, body := get(t, base+"/readyz"); !strings.Contains(body, "broker: ") || strings.Contains(body, "broker: ok") {
		t.Errorf("/readyz body %q does not name the broker", body)
	}
	if code, _ := get(t, base+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d while the broker is cut off, want 200: the process lives", code)
	}

	proxy.Restore()
	eventually(t, "ready again once the broker is back", ready(http.StatusOK))
	bg.stop().ok(t)
}
