package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/internal/errtext"
	"github.com/cqrsync/cqrsync/tools"
)

// The diff and repair pipeline, in django-cqrs's stream formats:
//
//	master$ cqrsync diff-master -c ID | replica$ cqrsync diff-replica | master$ cqrsync diff-sync
//	replica$ cqrsync deleted-diff-replica -c ID | master$ cqrsync deleted-diff-master | replica$ cqrsync deleted-sync-replica

const pipelineHelp = `
The diff and repair pipelines, with django-cqrs's stream formats (so a
pipe may mix Go and Django services):

  master$  cqrsync diff-master -c ID | replica$ cqrsync diff-replica | master$ cqrsync diff-sync
  replica$ cqrsync deleted-diff-replica -c ID | master$ cqrsync deleted-diff-master | replica$ cqrsync deleted-sync-replica`

// diffTableFlags are the flags of the commands that read a table.
type diffTableFlags struct {
	cqrsID, filter string
	batch          int
}

func (d *diffTableFlags) add(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVarP(&d.cqrsID, "cqrs-id", "c", "", "CQRS ID of the model (required)")
	f.StringVarP(&d.filter, "filter", "f", "", `compare only the rows this filter selects, e.g. '{"id__gte": 1000}'`)
	f.IntVarP(&d.batch, "batch", "b", 10000, "keys per line (rows read per query)")
}

func (d *diffTableFlags) check() error {
	if d.cqrsID == "" {
		return UsageError{Err: errors.New("--cqrs-id is required")}
	}
	return errors.Join(checkBatch(d.batch), checkFilter(d.filter))
}

func newDiffMasterCommand(st *state) *cobra.Command {
	var d diffTableFlags
	cmd := &cobra.Command{
		Use:   "diff-master --cqrs-id ID",
		Short: "Start a diff: list a master model's keys and revisions (master side)",
		Long: `diff-master writes, on stdout, the first stream of the diff pipeline:
"<cqrs_id>,<now>" on the first line, then per batch a JSON list of
[pk, cqrs_revision] pairs (django-cqrs's cqrs_diff_master). Rows the model
does not publish are left out. Pipe it into diff-replica on the replica.` + pipelineHelp,
		Example: `  cqrsync diff-master -c account > account.diff
  cqrsync diff-master -c account -f '{"id__gte": 5000}' --batch 1000`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := d.check(); err != nil {
				return err
			}
			check := func(app *App) error { return checkModel("master", d.cqrsID, app.Master.Models()) }
			return st.run(cmd, Needs{DB: true, Master: true}, check, func(s *session) error {
				return tools.DiffMaster(s.ctx, s.app.Master, s.ex(), d.cqrsID, s.env.Out, &tools.DiffOpts{Filter: d.filter, BatchSize: d.batch})
			})
		},
	}
	d.add(cmd)
	return cmd
}

func newDiffReplicaCommand(st *state) *cobra.Command {
	var input, queue string
	cmd := &cobra.Command{
		Use:   "diff-replica < diff-master-output",
		Short: "Compare diff-master's stream with the replica; list the keys to resync (replica side)",
		Long: `diff-replica reads diff-master's stream and writes, on stdout, the keys
the replica lacks or holds at another revision: the first line with
",<queue>" appended (this replica's queue, so that diff-sync sends the SYNCs
to it alone), then one JSON list of keys per input line that has any
(django-cqrs's cqrs_diff_replica). Each such list is also printed on stderr
as "PK to resync: {…}". Pipe it into diff-sync on the master.` + pipelineHelp,
		Example: `  cqrsync diff-replica < account.diff > account.resync
  ssh master cqrsync diff-master -c account | cqrsync diff-replica | ssh master cqrsync diff-sync`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkQueue("--queue", queue); err != nil {
				return err
			}
			in, _, closeIn, err := openInput(st.env.In, input)
			if err != nil {
				return err
			}
			defer closeIn()
			return st.run(cmd, Needs{DB: true, Replica: true, Queue: queue == ""}, nil, func(s *session) error {
				q := queue
				if q == "" {
					q = s.app.Queue
				}
				out := &lineTap{w: s.env.Out, fn: func(line []byte) {
					fmt.Fprintf(s.env.Err, "PK to resync: %s\n", pyRepr(line, true))
				}}
				_, err := tools.DiffReplica(s.ctx, s.app.Replica, s.ex(), q, in, out)
				return err
			})
		},
	}
	f := cmd.Flags()
	f.StringVarP(&input, "input", "i", "-", `diff-master's output, "-" for stdin`)
	f.StringVarP(&queue, "queue", "q", "", "queue to name in the output (default: this replica's queue)")
	return cmd
}

func newDiffSyncCommand(st *state) *cobra.Command {
	var (
		input  string
		dryRun bool
		wait   waitFlags
	)
	cmd := &cobra.Command{
		Use:   "diff-sync < diff-replica-output",
		Short: "Send SYNCs of the keys diff-replica listed (master side)",
		Long: `diff-sync reads diff-replica's stream and sends a SYNC of each listed row to
the queue named at the end of its first line ("None" broadcasts), as
django-cqrs's cqrs_diff_sync does, printing "Done!" with the counts for each
input line on stdout. SYNCs sent to a queue are a repair: the replica
overwrites its rows whatever their revision (run on a quiet table, or diff
again afterwards); broadcast SYNCs never downgrade a replica's row. The SYNCs go through the outbox and are then sent by a
relay of this command (see sync for --no-wait and --timeout). --dry-run only
counts the keys.` + pipelineHelp,
		Example: `  cqrsync diff-sync < account.resync
  cqrsync diff-master -c account | ssh replica cqrsync diff-replica | cqrsync diff-sync`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := wait.check(); err != nil {
				return err
			}
			in, _, closeIn, err := openInput(st.env.In, input)
			if err != nil {
				return err
			}
			defer closeIn()
			sc := newStreamScanner(in)
			header, cqrsID, queue, err := readHeader(sc, input)
			if err != nil {
				return err
			}
			check := func(app *App) error {
				if err := checkModel("master", cqrsID, app.Master.Models()); err != nil {
					return errtext.Errorf("%w: the stream is about %q, which is not a master model here (registered: %s)",
						tools.ErrBadDiffStream, cqrsID, strings.Join(app.Master.Models(), ", "))
				}
				return nil
			}
			needs := Needs{DB: true, Master: true, Transport: !dryRun && !wait.noWait}
			return st.run(cmd, needs, check, func(s *session) error {
				var tr *Transport
				if needs.Transport {
					if tr, err = s.transport(); err != nil {
						return err
					}
				}
				target := "every replica queue"
				if queue != "" && queue != "None" {
					target = "queue " + queue
				}
				var total int64
				for lineNo := 2; sc.Scan(); lineNo++ {
					line := strings.TrimSpace(sc.Text())
					if line == "" {
						continue
					}
					keys, err := keyList(line, lineNo)
					if err != nil {
						return err
					}
					if dryRun {
						fmt.Fprintf(s.env.Out, "Dry run: would sync up to %d instance(s) of %s to %s: %s\n", len(keys), cqrsID, target, line)
						continue
					}
					synced, processed, err := tools.DiffSync(s.ctx, s.app.Master, s.ex(), strings.NewReader(header+"\n"+line+"\n"))
					if err != nil {
						return errtext.Errorf("line %d: %w", lineNo, err)
					}
					total += synced
					fmt.Fprintf(s.env.Out, "Done!\n%d instance(s) synced.\n%d instance(s) processed.\n", synced, processed)
				}
				if err := sc.Err(); err != nil {
					return errtext.Errorf("reading %s: %w", inputName(input), err)
				}
				if dryRun || total == 0 {
					return nil
				}
				if tr == nil {
					fmt.Fprintf(s.env.Err, "%d SYNC event(s) are in the outbox: the service's relay sends them (cqrsync relay).\n", total)
					return nil
				}
				_, err := drain(s, tr, time.Now(), wait.timeout)
				return err
			})
		},
	}
	f := cmd.Flags()
	f.StringVarP(&input, "input", "i", "-", `diff-replica's output, "-" for stdin`)
	f.BoolVar(&dryRun, "dry-run", false, "report the keys that would be synced; send nothing")
	wait.add(cmd)
	return cmd
}

func newDeletedDiffReplicaCommand(st *state) *cobra.Command {
	var d diffTableFlags
	cmd := &cobra.Command{
		Use:   "deleted-diff-replica --cqrs-id ID",
		Short: "Start a deleted-rows diff: list a replica model's keys (replica side)",
		Long: `deleted-diff-replica writes, on stdout, the first stream of the deleted-rows
pipeline: "<cqrs_id>,<now>" on the first line, then per batch a JSON list of
the replica's keys (django-cqrs's cqrs_deleted_diff_replica). Pipe it into
deleted-diff-master on the master.` + pipelineHelp,
		Example: `  cqrsync deleted-diff-replica -c account > account.keys
  cqrsync deleted-diff-replica -c account | ssh master cqrsync deleted-diff-master | cqrsync deleted-sync-replica`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := d.check(); err != nil {
				return err
			}
			check := func(app *App) error { return checkModel("replica", d.cqrsID, app.Replica.Models()) }
			return st.run(cmd, Needs{DB: true, Replica: true}, check, func(s *session) error {
				return tools.DeletedDiffReplica(s.ctx, s.app.Replica, s.ex(), d.cqrsID, s.env.Out, &tools.DiffOpts{Filter: d.filter, BatchSize: d.batch})
			})
		},
	}
	d.add(cmd)
	return cmd
}

func newDeletedDiffMasterCommand(st *state) *cobra.Command {
	var input string
	cmd := &cobra.Command{
		Use:   "deleted-diff-master < deleted-diff-replica-output",
		Short: "List the keys the master no longer has (master side)",
		Long: `deleted-diff-master reads deleted-diff-replica's stream and writes, on
stdout, the first line again, then for each input line the JSON list of its
keys that no longer exist on the master, when there are any
(django-cqrs's cqrs_deleted_diff_master). Each list is also printed on stderr
as "PK to delete: […]". Pipe it into deleted-sync-replica on the replica.` + pipelineHelp,
		Example: `  cqrsync deleted-diff-master < account.keys > account.gone`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			in, _, closeIn, err := openInput(st.env.In, input)
			if err != nil {
				return err
			}
			defer closeIn()
			return st.run(cmd, Needs{DB: true, Master: true}, nil, func(s *session) error {
				out := &lineTap{w: s.env.Out, fn: func(line []byte) {
					fmt.Fprintf(s.env.Err, "PK to delete: %s\n", pyRepr(line, false))
				}}
				_, err := tools.DeletedDiffMaster(s.ctx, s.app.Master, s.ex(), in, out)
				return err
			})
		},
	}
	cmd.Flags().StringVarP(&input, "input", "i", "-", `deleted-diff-replica's output, "-" for stdin`)
	return cmd
}

func newDeletedSyncReplicaCommand(st *state) *cobra.Command {
	var (
		input  string
		dryRun bool
	)
	cmd := &cobra.Command{
		Use:   "deleted-sync-replica < deleted-diff-master-output",
		Short: "Delete the replica rows deleted-diff-master listed (replica side)",
		Long: `deleted-sync-replica reads deleted-diff-master's stream and deletes the
listed rows from the replica's table (django-cqrs's cqrs_deleted_sync_replica).
Like it, it prints nothing on success. --dry-run prints the keys it would
delete and deletes nothing.` + pipelineHelp,
		Example: `  cqrsync deleted-sync-replica < account.gone
  cqrsync deleted-sync-replica --dry-run < account.gone`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			in, _, closeIn, err := openInput(st.env.In, input)
			if err != nil {
				return err
			}
			defer closeIn()
			if !dryRun {
				return st.run(cmd, Needs{DB: true, Replica: true}, nil, func(s *session) error {
					_, err := tools.DeletedSyncReplica(s.ctx, s.app.Replica, s.ex(), in)
					return err
				})
			}
			sc := newStreamScanner(in)
			_, cqrsID, _, err := readHeader(sc, input)
			if err != nil {
				return err
			}
			check := func(app *App) error {
				if _, ok := app.Replica.Model(cqrsID); !ok {
					return errtext.Errorf("%w: the stream is about %q, which is not a replica model here (registered: %s)",
						tools.ErrBadDiffStream, cqrsID, strings.Join(app.Replica.Models(), ", "))
				}
				return nil
			}
			return st.run(cmd, Needs{DB: true, Replica: true}, check, func(s *session) error {
				var n int
				for lineNo := 2; sc.Scan(); lineNo++ {
					line := strings.TrimSpace(sc.Text())
					if line == "" {
						continue
					}
					keys, err := keyList(line, lineNo)
					if err != nil {
						return err
					}
					n += len(keys)
					fmt.Fprintf(s.env.Out, "Dry run: would delete %s\n", line)
				}
				if err := sc.Err(); err != nil {
					return err
				}
				fmt.Fprintf(s.env.Out, "Dry run: would delete up to %d instance(s) of %s; nothing was deleted.\n", n, cqrsID)
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVarP(&input, "input", "i", "-", `deleted-diff-master's output, "-" for stdin`)
	f.BoolVar(&dryRun, "dry-run", false, "print the keys that would be deleted; delete nothing")
	return cmd
}

func newStreamScanner(in io.Reader) *bufio.Scanner {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 256<<20)
	return sc
}

// readHeader reads a diff stream's first line: "<cqrs_id>,<datetime>" and,
// after diff-replica, ",<queue>".
func readHeader(sc *bufio.Scanner, input string) (header, cqrsID, queue string, err error) {
	if !sc.Scan() {
		if err := sc.Err(); err != nil {
			return "", "", "", errtext.Errorf("reading %s: %w", inputName(input), err)
		}
		return "", "", "", errtext.Errorf("%w: %s is empty; its first line must be \"<cqrs_id>,<datetime>\"", tools.ErrBadDiffStream, inputName(input))
	}
	header = strings.TrimRight(sc.Text(), "\r")
	parts := strings.Split(header, ",")
	if len(parts) < 2 || parts[0] == "" {
		return "", "", "", errtext.Errorf("%w: first line %q is not \"<cqrs_id>,<datetime>\"", tools.ErrBadDiffStream, truncate(header, 80))
	}
	if len(parts) > 2 {
		queue = parts[len(parts)-1]
	}
	return header, parts[0], queue, nil
}

// keyList decodes one line of keys.
func keyList(line string, lineNo int) ([]any, error) {
	v, err := cqrsync.DecodeJSON([]byte(line))
	keys, ok := v.([]any)
	if err != nil || !ok {
		return nil, errtext.Errorf("%w: line %d is not a JSON list of keys", tools.ErrBadDiffStream, lineNo)
	}
	return keys, nil
}
