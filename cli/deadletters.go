package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/internal/days"
	"github.com/cqrsync/cqrsync/internal/errtext"
	"github.com/cqrsync/cqrsync/tools"
)

// deadLetterFlags select dead letters.
type deadLetterFlags struct {
	cqrsIDs   []string
	olderThan string
	queue     string
	dryRun    bool
}

func (d *deadLetterFlags) add(cmd *cobra.Command, dryRun bool) {
	f := cmd.Flags()
	f.StringSliceVarP(&d.cqrsIDs, "cqrs-id", "c", nil, "only dead letters of these models (repeat the flag or separate with commas)")
	f.StringVar(&d.olderThan, "older-than", "", `only dead letters dead-lettered at least this long ago, e.g. 1h or 7d (django-cqrs's, which carry no time, count as old)`)
	f.StringVarP(&d.queue, "queue", "q", "", "the replica queue whose dead letters to handle (default: this replica's queue)")
	if dryRun {
		f.BoolVar(&d.dryRun, "dry-run", false, "report what would be done; change nothing")
	}
}

func (d *deadLetterFlags) filter() (*tools.DeadLetterFilter, error) {
	f := &tools.DeadLetterFilter{CQRSIDs: d.cqrsIDs}
	if d.olderThan != "" {
		age, err := days.ParseDuration(d.olderThan)
		if err != nil || age <= 0 {
			return nil, UsageError{Err: errtext.Errorf("--older-than %q: want a duration like 30m, 12h or 7d", d.olderThan)}
		}
		f.OlderThan = age
	}
	for _, id := range d.cqrsIDs {
		if id == "" || strings.ContainsAny(id, ".*# ") {
			return nil, UsageError{Err: errtext.Errorf("--cqrs-id %q is not a CQRS ID", id)}
		}
	}
	return f, checkQueue("--queue", d.queue)
}

func newDeadLettersCommand(st *state) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dead-letters dump|retry|purge",
		Short: "List, retry or purge the replica queue's dead letters",
		Long: `dead-letters handles the events the consumer gave up on, in the queue
"dead_letter_<queue>" (django-cqrs's cqrs_dead_letters): dump lists them,
retry sends them back to the replica queue, purge removes them. --cqrs-id and
--older-than select which.`,
		Example: `  cqrsync dead-letters dump > dead.jsonl
  cqrsync dead-letters retry --cqrs-id account --dry-run
  cqrsync dead-letters purge --older-than 30d`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return UsageError{Err: errors.New("name a subcommand: dump, retry or purge")}
		},
	}
	cmd.AddCommand(newDeadLettersDumpCommand(st), newDeadLettersRetryCommand(st), newDeadLettersPurgeCommand(st))
	return cmd
}

// deadLetterSession opens the session of a dead-letter command and returns
// its transport and dead-letter queue.
func deadLetterSession(st *state, cmd *cobra.Command, d *deadLetterFlags, fn func(s *session, tr *Transport, queue, dlq string) error) error {
	return st.run(cmd, Needs{Transport: true, Queue: d.queue == ""}, nil, func(s *session) error {
		queue, dlq := s.app.Queue, s.dlq()
		if d.queue != "" {
			queue, dlq = d.queue, "dead_letter_"+d.queue
		}
		tr, err := s.transport()
		if err != nil {
			return err
		}
		if tr.DeadLetters == nil || !tr.DeadLetters.Capabilities().DeadLetterBrowse {
			return errors.New("this broker's transport does not keep dead letters")
		}
		return fn(s, tr, queue, dlq)
	})
}

func newDeadLettersDumpCommand(st *state) *cobra.Command {
	var d deadLetterFlags
	var format string
	cmd := &cobra.Command{
		Use:   "dump",
		Short: "Print the dead letters' bodies, one per line; they stay in the queue",
		Long: `dump writes the body of each selected dead letter to stdout, one per line,
exactly as received (django-cqrs's cqrs_dead_letters dump). The messages stay
in the dead-letter queue.

--format jsonl writes instead one JSON object per line, with why and when the
consumer dead-lettered the event:
  {"cqrs_id":…,"reason":…,"dead_lettered_at":…,"body":…}
reason and dead_lettered_at are null for dead letters that carry none
(django-cqrs's); body is the body itself, or a string holding it when it is
not JSON.`,
		Example: `  cqrsync dead-letters dump
  cqrsync dead-letters dump --cqrs-id account --older-than 1h | jq .instance_pk
  cqrsync dead-letters dump --format jsonl | jq -r '[.body.instance_pk, .reason] | @tsv'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			filter, err := d.filter()
			if err != nil {
				return err
			}
			dump := tools.DumpDeadLetters
			switch format {
			case "raw":
			case "jsonl":
				dump = tools.DumpDeadLettersJSONL
			default:
				return UsageError{Err: fmt.Errorf("--format %q: want raw or jsonl", format)}
			}
			return deadLetterSession(st, cmd, &d, func(s *session, tr *Transport, _, dlq string) error {
				_, err := dump(s.ctx, tr.DeadLetters, dlq, filter, s.env.Out)
				return err
			})
		},
	}
	d.add(cmd, false)
	cmd.Flags().StringVar(&format, "format", "raw", `raw: each body as received, django-cqrs's format; jsonl: a JSON object per line with cqrs_id, reason, dead_lettered_at and body`)
	return cmd
}

func newDeadLettersRetryCommand(st *state) *cobra.Command {
	var d deadLetterFlags
	cmd := &cobra.Command{
		Use:   "retry",
		Short: "Send the dead letters back to the replica queue",
		Long: `retry republishes each selected dead letter to the replica queue (routing key
cqrs.<queue>.<cqrs_id>) with retries reset to 0 and a fresh expiry, and
removes it from the dead-letter queue only once the broker confirmed the
copy (django-cqrs's cqrs_dead_letters retry). Like django-cqrs, it prints
"Total dead letters: N" and, for each, "Retrying: i/N" and the JSON it sends,
on stdout. --dry-run prints the dead letters it would retry.`,
		Example: `  cqrsync dead-letters retry
  cqrsync dead-letters retry --cqrs-id account --dry-run`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			filter, err := d.filter()
			if err != nil {
				return err
			}
			return deadLetterSession(st, cmd, &d, func(s *session, tr *Transport, queue, dlq string) error {
				total, err := tools.DumpDeadLetters(s.ctx, tr.DeadLetters, dlq, filter, io.Discard)
				if err != nil {
					return err
				}
				out := s.env.Out
				fmt.Fprintf(out, "Total dead letters: %d\n", total)
				if d.dryRun {
					i := 0
					tap := &lineTap{w: io.Discard, seen: 1, fn: func(line []byte) {
						i++
						fmt.Fprintf(out, "Would retry: %d/%d\n%s\n", i, total, line)
					}}
					if _, err := tools.DumpDeadLetters(s.ctx, tr.DeadLetters, dlq, filter, tap); err != nil {
						return err
					}
					fmt.Fprintf(out, "Dry run: would send %d dead letter(s) back to queue %s; nothing was changed.\n", i, queue)
					return nil
				}
				if total == 0 {
					return nil
				}
				_, err = tools.RetryDeadLetters(s.ctx, tr.DeadLetters, tr.Publisher, queue, dlq, &tools.RetryDeadLettersOpts{
					Filter: filter,
					OnRetry: func(i int, p *cqrsync.Payload) {
						body, err := p.AppendJSON(nil)
						if err != nil {
							body = []byte(err.Error())
						}
						fmt.Fprintf(out, "Retrying: %d/%d\n%s\n", i, max(total, i), body)
					},
				})
				return err
			})
		},
	}
	d.add(cmd, true)
	return cmd
}

func newDeadLettersPurgeCommand(st *state) *cobra.Command {
	var d deadLetterFlags
	cmd := &cobra.Command{
		Use:   "purge",
		Short: "Remove the dead letters",
		Long: `purge removes the selected dead letters for good (django-cqrs's
cqrs_dead_letters purge). Like django-cqrs, it prints "Total dead letters: N"
and, when N > 0, "Purged", on stdout. --dry-run only counts them.`,
		Example: `  cqrsync dead-letters purge
  cqrsync dead-letters purge --older-than 30d --dry-run`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			filter, err := d.filter()
			if err != nil {
				return err
			}
			return deadLetterSession(st, cmd, &d, func(s *session, tr *Transport, _, dlq string) error {
				total, err := tools.DumpDeadLetters(s.ctx, tr.DeadLetters, dlq, filter, io.Discard)
				if err != nil {
					return err
				}
				fmt.Fprintf(s.env.Out, "Total dead letters: %d\n", total)
				if d.dryRun {
					fmt.Fprintf(s.env.Out, "Dry run: would purge %d dead letter(s) from %s; nothing was changed.\n", total, dlq)
					return nil
				}
				if total == 0 {
					return nil
				}
				if _, err := tools.PurgeDeadLetters(s.ctx, tr.DeadLetters, dlq, filter); err != nil {
					return err
				}
				fmt.Fprintln(s.env.Out, "Purged")
				return nil
			})
		},
	}
	d.add(cmd, true)
	return cmd
}
