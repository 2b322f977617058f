package otelhook_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if a test leaves goroutines behind: pipelines,
// transports and databases must all be closed when a test ends.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
