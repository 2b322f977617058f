package cli

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/internal/errtext"
	"github.com/cqrsync/cqrsync/tools"
)

func newBulkDumpCommand(st *state) *cobra.Command {
	var (
		cqrsID, output, filter string
		batch                  int
		force                  bool
		prog                   progressFlag
	)
	cmd := &cobra.Command{
		Use:   "bulk-dump --cqrs-id ID [-o FILE|-]",
		Short: "Dump a master model's rows to a file, in django-cqrs's bulk format",
		Long: `bulk-dump writes every row of a master model as django-cqrs's
cqrs_bulk_dump does: the CQRS ID on the first line, then each row's
instance_data, exactly as a SYNC would carry it, one compact JSON object per
line (no newline after the last). It reads the table in keyset pages, so it
is safe on a live table of any size.

The output file is written under a temporary name and renamed when the dump
is complete, so a failed or interrupted dump leaves nothing behind. As in
django-cqrs, rows the model's sync check (is_sync_instance) refuses are
dumped too. An
existing file is refused unless --force is given. The summary ("Done!",
rows saved and processed) goes to stderr.`,
		Example: `  cqrsync bulk-dump --cqrs-id account                   # writes account.dump
  cqrsync bulk-dump -c account -o - | gzip > account.dump.gz
  cqrsync bulk-dump -c account -o /backups/account.dump -f --progress   # -f: --force
  cqrsync bulk-dump -c account --filter '{"id__gte": 1000}' -o recent.dump`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cqrsID == "" {
				return UsageError{Err: errors.New("--cqrs-id is required")}
			}
			if err := errors.Join(checkBatch(batch), checkFilter(filter)); err != nil {
				return err
			}
			if output == "" {
				output = cqrsID + ".dump"
			}
			if output != "-" {
				if _, err := os.Stat(output); err == nil && !force {
					return UsageError{Err: errtext.Errorf("output file %s exists: pass --force to overwrite it", output)}
				}
			}
			check := func(app *App) error { return checkModel("master", cqrsID, app.Master.Models()) }
			return st.run(cmd, Needs{DB: true, Master: true}, check, func(s *session) error {
				p := prog.reporter(cmd, s, "bulk-dump "+cqrsID, "rows")
				opts := &tools.DumpOpts{Filter: filter, BatchSize: batch, Progress: p.update}
				var written, processed int64
				var err error
				if output == "-" {
					written, processed, err = tools.Dump(s.ctx, s.app.Master, s.ex(), cqrsID, s.env.Out, opts)
				} else {
					written, processed, err = dumpToFile(s, cqrsID, output, force, opts)
				}
				if err != nil {
					return err
				}
				p.finish(processed, processed)
				fmt.Fprintf(s.env.Err, "Done!\n%d instance(s) saved.\n%d instance(s) processed.\n", written, processed)
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVarP(&cqrsID, "cqrs-id", "c", "", "CQRS ID of the master model (required)")
	f.StringVarP(&output, "output", "o", "", `output file, "-" for stdout (default "<cqrs-id>.dump")`)
	f.StringVar(&filter, "filter", "", `dump only the rows this filter selects, e.g. '{"id__gte": 1000}' (no short form: -f is --force, as in django-cqrs)`)
	f.IntVarP(&batch, "batch", "b", 10000, "rows read per query")
	f.BoolVarP(&force, "force", "f", false, "overwrite the output file if it exists")
	prog.add(cmd)
	return cmd
}

// dumpToFile dumps into a temporary file beside path and renames it to path
// once complete, so that path never holds half a dump.
func dumpToFile(s *session, cqrsID, path string, force bool, opts *tools.DumpOpts) (written, processed int64, err error) {
	dir, base := filepath.Split(path)
	tmp, err := os.CreateTemp(dir, "."+base+".*.tmp")
	if err != nil {
		return 0, 0, errtext.Errorf("output file: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	written, processed, err = tools.Dump(s.ctx, s.app.Master, s.ex(), cqrsID, tmp, opts)
	if err != nil {
		return written, processed, err
	}
	if err = tmp.Sync(); err != nil {
		return written, processed, errtext.Errorf("output file: %w", err)
	}
	if err = tmp.Close(); err != nil {
		return written, processed, errtext.Errorf("output file: %w", err)
	}
	if _, serr := os.Stat(path); serr == nil && !force {
		err = errtext.Errorf("output file %s appeared during the dump: pass --force to overwrite it", path)
		return written, processed, err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return written, processed, errtext.Errorf("output file: %w", err)
	}
	return written, processed, nil
}

func newBulkLoadCommand(st *state) *cobra.Command {
	var (
		input         string
		batch         int
		clear, dryRun bool
		prog          progressFlag
	)
	cmd := &cobra.Command{
		Use:   "bulk-load -i FILE|-",
		Short: "Load a bulk dump into a replica model's table",
		Long: `bulk-load reads a dump in django-cqrs's bulk format (from bulk-dump, or
django-cqrs's cqrs_bulk_dump) and applies each row with SAVE semantics, through
the same revision guard as events: a row older than, or as new as, the one the
replica holds changes nothing. The first line names the model.

It commits every --batch lines, so an interruption keeps what was committed
and the error says how many lines that was. A line that is not valid JSON, or
that the table rejects, is reported on stderr with its line number and
skipped; the load goes on, and exits 1 at the end. A table or column the
model needs and the database lacks stops it before the first line (exit 2). --clear deletes every row
of the table first, in the first batch's transaction (only when given:
--clear=false does not clear). The summary goes to stderr.`,
		Example: `  cqrsync bulk-load -i account.dump
  gunzip -c account.dump.gz | cqrsync bulk-load -i -
  cqrsync bulk-load -i account.dump --clear --dry-run   # what would happen`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if input == "" {
				return UsageError{Err: errors.New("--input is required (a file, or - for stdin)")}
			}
			if err := checkBatch(batch); err != nil {
				return err
			}
			in, size, closeIn, err := openInput(st.env.In, input)
			if err != nil {
				return err
			}
			defer closeIn()
			// Read the first line now, to refuse a dump of a model this
			// replica lacks before touching the database.
			br := bufio.NewReaderSize(in, 64<<10)
			header, err := br.ReadString('\n')
			if err != nil && !errors.Is(err, io.EOF) {
				return errtext.Errorf("reading %s: %w", inputName(input), err)
			}
			cqrsID := strings.TrimSpace(header)
			if cqrsID == "" {
				return errtext.Errorf("%w: %s is empty; its first line must be the CQRS ID", tools.ErrBadDump, inputName(input))
			}
			check := func(app *App) error {
				if _, ok := app.Replica.Model(cqrsID); !ok {
					return errtext.Errorf("%w: %s is a dump of %q, which is not a replica model here (registered: %s)",
						tools.ErrBadDump, inputName(input), truncate(cqrsID, 80), strings.Join(app.Replica.Models(), ", "))
				}
				return nil
			}
			return st.run(cmd, Needs{DB: true, Replica: true}, check, func(s *session) error {
				counted := &countingReader{r: io.MultiReader(strings.NewReader(header), br)}
				bad := func(line int, err error) {
					fmt.Fprintf(s.env.Err, "line %d: skipped: %s\n", line, errtext.Cause(err))
				}
				if dryRun {
					return dryRunLoad(s, counted, cqrsID, clear, bad)
				}
				p := prog.reporter(cmd, s, "bulk-load "+cqrsID, "lines")
				res, err := tools.Load(s.ctx, s.app.Replica, counted, &tools.LoadOpts{
					BatchSize: batch, Clear: clear, OnBadLine: bad,
					Progress: func(lines int64) {
						frac := -1.0
						if size > 0 {
							frac = float64(counted.n) / float64(size)
						}
						p.updateFrac(lines, 0, frac)
					},
				})
				if err != nil {
					return err
				}
				p.finish(res.Lines, 0)
				fmt.Fprintf(s.env.Err, "Done!\n%d instance(s) loaded.\n", res.Loaded)
				if res.Unchanged > 0 {
					fmt.Fprintf(s.env.Err, "%d instance(s) unchanged (the replica holds them as new or newer).\n", res.Unchanged)
				}
				if res.Skipped > 0 {
					return errtext.Errorf("%d bad line(s) skipped (listed above); the other %d line(s) were applied", res.Skipped, res.Lines-res.Skipped)
				}
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVarP(&input, "input", "i", "", `dump file to load, "-" for stdin (required)`)
	f.IntVarP(&batch, "batch", "b", 10000, "lines applied per transaction")
	f.BoolVarP(&clear, "clear", "c", false, "delete every row of the table before loading, in the first batch's transaction")
	f.BoolVar(&dryRun, "dry-run", false, "check the dump and report what would change; write nothing")
	prog.add(cmd)
	return cmd
}

// dryRunLoad reads a dump and reports what a load would do, without
// writing: bad lines, and how many rows differ from the replica (through
// the diff-replica machinery: missing, or held at another revision).
func dryRunLoad(s *session, in io.Reader, cqrsID string, clear bool, bad func(int, error)) error {
	rm, _ := s.app.Replica.Model(cqrsID)
	pkField := rm.PK
	for from, to := range rm.Mapping {
		if to == rm.PK {
			pkField = from
		}
	}
	pr, pw := io.Pipe()
	var lines, skipped int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Turn the dump into a diff-master stream of [pk, revision] pairs.
		sc := bufio.NewScanner(in)
		sc.Buffer(make([]byte, 64<<10), 64<<20)
		bw := bufio.NewWriter(pw)
		fmt.Fprintf(bw, "%s,%s\n", cqrsID, cqrsync.FormatDateTime(time.Now().UTC()))
		sc.Scan() // the header, checked already
		lineNo := 1
		var pairs []any
		flush := func() {
			if len(pairs) > 0 {
				b, _ := cqrsync.AppendJSON(nil, pairs)
				bw.Write(append(b, '\n'))
				pairs = pairs[:0]
			}
		}
		for sc.Scan() {
			lineNo++
			text := bytes.TrimSpace(sc.Bytes())
			if len(text) == 0 {
				continue
			}
			lines++
			v, err := cqrsync.DecodeJSON(text)
			obj, ok := v.(cqrsync.Object)
			if err != nil || !ok {
				if err == nil {
					err = errors.New("not a JSON object")
				}
				skipped++
				bad(lineNo, errtext.Errorf("%w: %v", cqrsync.ErrMalformedPayload, err))
				continue
			}
			pk, _ := obj.Get(pkField)
			rev, _ := obj.Get(cqrsync.RevisionField)
			if pk == nil || rev == nil {
				skipped++
				bad(lineNo, errtext.Errorf("%w: no %s or %s", cqrsync.ErrMissingFields, pkField, cqrsync.RevisionField))
				continue
			}
			pairs = append(pairs, []any{pk, rev})
			if len(pairs) == 1000 {
				flush()
			}
		}
		flush()
		err := sc.Err()
		if ferr := bw.Flush(); err == nil {
			err = ferr
		}
		pw.CloseWithError(err)
	}()
	differ, err := tools.DiffReplica(s.ctx, s.app.Replica, s.ex(), "dry-run", pr, io.Discard)
	_ = pr.CloseWithError(errors.New("stopped"))
	<-done
	if err != nil {
		return err
	}
	out := s.env.Out
	fmt.Fprintf(out, "Dry run: nothing was changed.\n%d line(s) read, %d bad.\n", lines, skipped)
	if clear {
		var existing int64
		counter := &lineTap{w: io.Discard, fn: func(line []byte) {
			v, _ := cqrsync.DecodeJSON(line)
			keys, _ := v.([]any)
			existing += int64(len(keys))
		}}
		if err := tools.DeletedDiffReplica(s.ctx, s.app.Replica, s.ex(), cqrsID, counter, nil); err != nil {
			return err
		}
		fmt.Fprintf(out, "--clear would delete the %d row(s) of table %s first; the load would then write the %d good line(s).\n", existing, rm.Table, lines-skipped)
		return nil
	}
	fmt.Fprintf(out, "%d row(s) are missing on the replica or held at another revision: a load writes those the dump holds at a newer revision; the other %d are unchanged.\n",
		len(differ), lines-skipped-int64(len(differ)))
	return nil
}

// openInput opens -i: "-" is the command's stdin. size is the file's size
// when known (for the ETA), else 0.
func openInput(stdin io.Reader, name string) (r io.Reader, size int64, closeFn func(), err error) {
	if name == "-" {
		return stdin, 0, func() {}, nil
	}
	f, err := os.Open(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, 0, nil, errtext.Errorf("input file %s does not exist", name)
		}
		return nil, 0, nil, errtext.Errorf("input file: %w", err)
	}
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
		size = fi.Size()
	}
	return f, size, func() { _ = f.Close() }, nil
}

func inputName(name string) string {
	if name == "-" {
		return "stdin"
	}
	return name
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
