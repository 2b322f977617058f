package admin_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if a test leaves goroutines behind: servers,
// relays, consumers and browsers must all be stopped.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
