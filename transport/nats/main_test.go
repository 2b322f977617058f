package nats_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if a test leaves goroutines behind: every
// connection, puller and lease loop must be gone once the transports are
// closed.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
