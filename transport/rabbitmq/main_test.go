package rabbitmq_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if a test leaves goroutines behind: every
// connection, channel and amqp091 reader, heartbeater and consumer buffer
// must be gone once the transports are closed.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
