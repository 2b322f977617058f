package main

import (
	"math/rand/v2"
	"net/url"
	"strings"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"

	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/internal/testenv"
	"github.com/cqrsync/cqrsync/transport"
)

// TestMain fails the package's tests if a goroutine outlives them.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testTimeout bounds the wait for convergence in the tests.
const testTimeout = 2 * time.Minute

// mysqlURL is a database of the test's own on the MariaDB server, as a
// mysql:// URL.
func mysqlURL(t *testing.T) string {
	cfg, err := gomysql.ParseDSN(cqrsynctesting.MySQLDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	u := url.URL{Scheme: "mysql", Host: cfg.Addr, Path: "/" + cfg.DBName, User: url.UserPassword(cfg.User, cfg.Passwd)}
	if cfg.Passwd == "" {
		u.User = url.User(cfg.User)
	}
	return u.String()
}

// runExample runs the example between two databases through a RabbitMQ
// exchange and queue of the test's own, and checks it converged.
func runExample(t *testing.T, master, replica string) {
	o := options{
		master: master, replica: replica, amqp: testenv.AMQPURL(t),
		exchange: cqrsynctesting.UniqueName("gormexample_x_"), queue: cqrsynctesting.UniqueName("gormexample_q_"),
		writers: 4, changes: 150, seed: rand.Uint64(), timeout: testTimeout, // the output names the seed
	}
	t.Cleanup(func() {
		conn, err := amqp.Dial(o.amqp)
		if err != nil {
			return
		}
		defer conn.Close()
		if ch, err := conn.Channel(); err == nil {
			_, _ = ch.QueueDelete(o.queue, false, false, false)
			_, _ = ch.QueueDelete(transport.DeadLetterQueue(o.queue), false, false, false)
			_ = ch.ExchangeDelete(o.exchange, false, false)
			_ = ch.Close()
		}
	})
	var out strings.Builder
	if err := run(t.Context(), o, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "converged:") {
		t.Fatalf("output without converged:\n%s", out.String())
	}
	t.Log(out.String())
}

func TestGORMServicePostgresToMariaDB(t *testing.T) {
	t.Parallel()
	runExample(t, cqrsynctesting.PostgresDSN(t), mysqlURL(t))
}

func TestGORMServiceMariaDBToPostgres(t *testing.T) {
	t.Parallel()
	runExample(t, mysqlURL(t), cqrsynctesting.PostgresDSN(t))
}
