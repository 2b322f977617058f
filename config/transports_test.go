package config_test

import (
	"context"
	"strings"
	"testing"

	"github.com/cqrsync/cqrsync/cli"
	"github.com/cqrsync/cqrsync/config"
)

// TestRegisterTransport: a URL is accepted once its scheme's kind is
// registered, and an unknown scheme's message lists the kinds the program
// can open.
func TestRegisterTransport(t *testing.T) {
	t.Parallel()
	doc := []byte("transport: {url: 'testbroker://host:1/', exchange: ex}\n")
	_, err := config.Parse("x.yaml", doc, nil)
	if err == nil || !strings.Contains(err.Error(), `scheme "testbroker" is not supported`) || !strings.Contains(err.Error(), "amqp://user:password@host:5672/ (RabbitMQ)") {
		t.Fatalf("unregistered scheme: err = %v, want it refused with the known kinds listed", err)
	}
	config.RegisterTransport(&config.TransportKind{
		Schemes: []string{"testbroker"},
		Example: "testbroker://host:1/ (a test)",
		Open: func(context.Context, *config.TransportRequest) (*cli.Transport, error) {
			return &cli.Transport{}, nil
		},
	})
	if _, err := config.Parse("x.yaml", doc, nil); err != nil {
		t.Fatalf("registered scheme refused: %v", err)
	}
	defer func() {
		if recover() == nil {
			t.Error("a scheme registered twice must panic")
		}
	}()
	config.RegisterTransport(&config.TransportKind{Schemes: []string{"testbroker"}})
}
