package cli

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/spf13/cobra"
)

// TestErrorLineInterrupted checks that an interrupted command's error names
// the command once, then says it was interrupted.
func TestErrorLineInterrupted(t *testing.T) {
	t.Parallel()
	root := &cobra.Command{Use: "cqrsync"}
	demo := &cobra.Command{Use: "demo"}
	root.AddCommand(demo)
	cases := []struct {
		name string
		err  error
		want string
	}{
		{"own prefix", fmt.Errorf("demo: stopped while writing: %w", context.Canceled), "demo: interrupted: stopped while writing: context canceled"},
		{"no prefix", fmt.Errorf("relay: %w", context.Canceled), "demo: interrupted: relay: context canceled"},
		{"not cancelled", errors.New("demo: broken"), "demo: broken"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if got := errorLine(demo, c.err, false, nil); got != c.want {
				t.Fatalf("errorLine = %q, want %q", got, c.want)
			}
		})
	}
}
