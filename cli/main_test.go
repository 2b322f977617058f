package cli_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if a command leaves goroutines behind: consumers,
// relays, transports and databases must all be closed when a command ends.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
