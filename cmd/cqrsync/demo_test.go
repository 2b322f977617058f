package main_test

import (
	"strings"
	"testing"
)

// TestDemo runs the README's first command, small: it needs no
// configuration and converges.
func TestDemo(t *testing.T) {
	t.Parallel()
	s := &service{dir: t.TempDir()}
	r := s.run(t, "", "demo", "--changes", "300", "--writers", "2", "--workers", "2", "--dir", t.TempDir(), "--seed", "7")
	r.ok(t)
	if !strings.Contains(r.out, "converged") || !strings.Contains(r.out, "seed 7") {
		t.Fatalf("demo stdout:\n%s\nstderr:\n%s", r.out, r.errOut)
	}
	s.run(t, "", "demo", "--changes", "0").fails(t, 2, "demo: --changes, --writers and --workers must be at least 1")
	s.run(t, "", "demo", "--transport", "http://127.0.0.1/").fails(t, 2, `demo: --transport: scheme "http" is not supported: use one of amqp://, amqps://, kafka://, nats://`)
	s.run(t, "", "bench", "--mix", "1:2").fails(t, 2, "bench: mix")
	s.run(t, "", "bench", "--transport", "http://127.0.0.1/").fails(t, 2, `bench: --transport: scheme "http" is not supported: use one of amqp://`)
}

// TestBinaryHasEveryCommand checks that the binary lists the commands it
// adds to the mountable tree (demo, bench) next to the tree's own.
func TestBinaryHasEveryCommand(t *testing.T) {
	t.Parallel()
	r := (&service{dir: t.TempDir()}).run(t, "", "--help")
	r.ok(t)
	for _, name := range []string{"demo", "bench", "consume", "relay", "migrate", "bulk-dump", "dead-letters"} {
		if !strings.Contains(r.out, "\n  "+name+" ") {
			t.Errorf("cqrsync --help does not list %s:\n%s", name, r.out)
		}
	}
}

// TestDemoHelpListsTransports checks that demo --help names every broker
// scheme --transport takes.
func TestDemoHelpListsTransports(t *testing.T) {
	t.Parallel()
	r := (&service{dir: t.TempDir()}).run(t, "", "demo", "--help")
	r.ok(t)
	for _, want := range []string{"--transport", "amqp://", "amqps://", "nats://", "kafka://", "kafka://kfake", "in-memory broker"} {
		if !strings.Contains(r.out, want) {
			t.Errorf("cqrsync demo --help does not mention %s:\n%s", want, r.out)
		}
	}
}
