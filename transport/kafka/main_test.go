package kafka_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if a test leaves goroutines behind: every
// subscription's loops and every franz-go client must be gone once the
// transports and kfake clusters are closed.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
