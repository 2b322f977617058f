package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/internal/errtext"
)

func newWaitCommand(st *state) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "wait TOKEN... [--timeout D]",
		Short: "Wait until this replica has applied the changes the tokens name (replica side)",
		Long: `wait returns once this replica's database holds the changes the tokens name
(read-your-writes): each token, as a master's capture call collected it
(cqrsync.CollectTokens), reads <cqrs_id>.<revision>.<key>, and is applied when
the key's stored cqrs_revision, or its tombstone's, is at least the revision.
It prints "applied <token>" per token and exits 0; when --timeout runs out
first it exits 1, and for a malformed token or one this replica cannot wait
for (a model it does not register, or one with no table) it exits 2. It polls
the key every replica.wait_poll (default 1s) of the configuration.`,
		Example: `  cqrsync wait account.3.42 --timeout 5s
  cqrsync wait account.3.42 order.0.~YS0x && curl http://replica/accounts/42`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if timeout <= 0 {
				return UsageError{Err: errtext.Errorf("--timeout %v: give a positive duration, e.g. 5s", timeout)}
			}
			toks := make([]cqrsync.Token, len(args))
			for i, a := range args {
				tok, err := cqrsync.ParseToken(a)
				if err != nil {
					return UsageError{Err: err}
				}
				toks[i] = tok
			}
			return st.run(cmd, Needs{DB: true, Replica: true}, nil, func(s *session) error {
				ctx, cancel := context.WithTimeout(s.ctx, timeout)
				defer cancel()
				for _, tok := range toks {
					err := s.app.Replica.WaitFor(ctx, tok)
					switch {
					case errors.Is(err, context.DeadlineExceeded):
						return fmt.Errorf("%s is not applied on this replica after %v: the consumer may lag or be stopped (check consume and the queue), or raise --timeout", tok, timeout)
					case errors.Is(err, cqrsync.ErrUnknownModel) || errors.Is(err, cqrsync.ErrNotWaitable) || errors.Is(err, cqrsync.ErrInvalidValue):
						return UsageError{Err: err}
					case err != nil:
						return err
					}
					fmt.Fprintf(s.env.Out, "applied %s\n", tok)
				}
				return nil
			})
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "how long to wait for all the tokens")
	return cmd
}
