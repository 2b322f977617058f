package main_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/transport"
	"github.com/cqrsync/cqrsync/transport/kafka"
)

// TestDeadLettersKafka dumps, retries and purges dead letters through the
// binary on a kafka:// URL (an in-process kfake cluster of the test: there
// is no Kafka server here). Purge writes tombstones: the dead letters are
// gone from the tools at once.
func TestDeadLettersKafka(t *testing.T) {
	t.Parallel()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	tr, err := kafka.New(ctx, &kafka.Config{Brokers: cluster.ListenAddrs(), Exchange: "ex"})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	const queue = "billing"
	dlq := transport.DeadLetterQueue(queue)
	sub, err := tr.Subscribe(ctx, &transport.SubscribeParams{Queue: queue, CQRSIDs: []string{"account", "invoice"}})
	if err != nil {
		t.Fatal(err)
	}
	_ = sub.Close()
	raw, err := os.ReadFile(filepath.Join(cqrsynctesting.VectorsDir(t), "cmd_cqrs_dead_letters_dump.txt"))
	if err != nil {
		t.Fatal(err)
	}
	account := strings.ReplaceAll(strings.TrimSpace(string(raw)), "djpeer_failing", "account")
	invoice := strings.ReplaceAll(account, `"cqrs_id":"account"`, `"cqrs_id":"invoice"`)
	if err := tr.Publish(ctx, []transport.Message{
		{CQRSID: "account", Queue: dlq, Body: []byte(account)},
		{CQRSID: "invoice", Queue: dlq, Body: []byte(invoice)},
	}); err != nil {
		t.Fatal(err)
	}
	replica := newService(t, fmt.Sprintf("transport: {url: 'kafka://%s', exchange: ex}\nqueue: %s\n", strings.Join(cluster.ListenAddrs(), ","), queue))

	r := replica.run(t, "", "dead-letters", "dump")
	if r.ok(t); r.out != account+"\n"+invoice+"\n" {
		t.Fatalf("dump: %q", r.out)
	}
	r = replica.run(t, "", "dead-letters", "retry", "--cqrs-id", "invoice")
	r.ok(t)
	if !strings.HasPrefix(r.out, "Total dead letters: 1\nRetrying: 1/1\n") {
		t.Fatalf("retry: %q", r.out)
	}
	r = replica.run(t, "", "dead-letters", "dump")
	if r.ok(t); r.out != account+"\n" {
		t.Fatalf("dump after the retry: %q", r.out)
	}
	// The retried event waits on the queue's topic for the next consumer.
	sub, err = tr.Subscribe(ctx, &transport.SubscribeParams{Queue: queue, CQRSIDs: []string{"account", "invoice"}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	select {
	case d := <-sub.Deliveries():
		if d.CQRSID != "invoice" || d.Queue != queue {
			t.Fatalf("retried event: %s for %q to %q", d.Body, d.CQRSID, d.Queue)
		}
		if err := sub.Ack(ctx, d.ID); err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatal("the retried event never reached the queue")
	}
	r = replica.run(t, "", "dead-letters", "purge")
	if r.ok(t); r.out != "Total dead letters: 1\nPurged\n" {
		t.Fatalf("purge: %q", r.out)
	}
	r = replica.run(t, "", "dead-letters", "dump")
	if r.ok(t); r.out != "" {
		t.Fatalf("dump after the purge: %q", r.out)
	}
}
