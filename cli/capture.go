package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/capture/trigger"
	"github.com/cqrsync/cqrsync/internal/errtext"
	"github.com/cqrsync/cqrsync/sqldialect"
)

func newCaptureCommand(st *state) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "capture install|uninstall|status",
		Short: "Capture every write of master tables with database triggers",
		Long: `Only captured writes are published. The library captures the writes a Go
service makes through cqrsync (Master.Insert, UpdateRow, Create, Update,
Delete); a write from psql, a migration or another language is not
published unless the table has capture triggers.

capture install puts triggers on the tables of master models (PostgreSQL,
MySQL/MariaDB) that capture every INSERT, UPDATE and DELETE, whoever writes
it: they keep cqrs_revision and cqrs_updated, record deleted keys'
tombstones and write each change into the outbox, in the writer's
transaction. The relay (cqrsync relay, or a service's relay with
outbox.Config.Renderer set to its master) turns them into the same events
library capture publishes. See docs/capturing.md for the costs.`,
		Example: `  cqrsync capture install -c account
  cqrsync capture status --json
  cqrsync capture uninstall -c account`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return UsageError{Err: errtext.Errorf("name a subcommand: install, uninstall or status")}
		},
	}
	cmd.AddCommand(
		newCaptureChangeCommand(st, "install", "Install (or replace) the capture triggers of master models' tables",
			`install installs the capture triggers of each named model's table (every
master model without --cqrs-id), or replaces them: run it again after a
change of the table's columns or of the model, and after upgrading cqrsync
(capture status says "not current"). It is safe on a live table:
writers wait for it (one transaction on PostgreSQL, a write lock of the
table on MySQL) and no write commits uncaptured. migrate must have run.
Services that capture through the library read whether a table has
triggers when they start (Check) or first capture on it: restart them after
the first install, or until then some of their changes are captured twice
(replicas still converge).`,
			trigger.Install),
		newCaptureChangeCommand(st, "uninstall", "Remove the capture triggers of master models' tables",
			`uninstall removes the capture triggers of each named model's table (every
master model without --cqrs-id). Writes are then published only when a
service captures them through the library.`,
			trigger.Uninstall),
		newCaptureStatusCommand(st),
	)
	return cmd
}

// runOnModels runs fn on the master models named by ids (--cqrs-id), or
// on every master model.
func runOnModels(st *state, cmd *cobra.Command, ids []string, fn func(s *session, models []*cqrsync.MasterModel) error) error {
	check := func(app *App) error {
		for _, id := range ids {
			if err := checkModel("master", id, app.Master.Models()); err != nil {
				return err
			}
		}
		return nil
	}
	return st.run(cmd, Needs{DB: true, Master: true}, check, func(s *session) error {
		if s.app.Dialect.Name() != "postgres" && s.app.Dialect.Name() != "mysql" {
			return UsageError{Err: errtext.Errorf("capture triggers are available on PostgreSQL and MySQL/MariaDB; this database is %s, where the service's own writes are the only writes (capture them through the library)", s.app.Dialect.Name())}
		}
		names := ids
		if len(names) == 0 {
			names = s.app.Master.Models()
		}
		models := make([]*cqrsync.MasterModel, 0, len(names))
		for _, id := range names {
			mm, ok := s.app.Master.Model(id)
			if !ok {
				return UsageError{Err: errtext.Errorf("--cqrs-id %q is not a master model here", id)}
			}
			models = append(models, mm)
		}
		return fn(s, models)
	})
}

func newCaptureChangeCommand(st *state, verb, short, long string, do func(ctx context.Context, db sqldialect.DB, models ...*cqrsync.MasterModel) error) *cobra.Command {
	var ids []string
	cmd := &cobra.Command{
		Use:     verb,
		Short:   short,
		Long:    long,
		Example: fmt.Sprintf("  cqrsync capture %s -c account -c invoice\n  cqrsync capture %s", verb, verb),
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runOnModels(st, cmd, ids, func(s *session, models []*cqrsync.MasterModel) error {
				if err := do(s.ctx, s.db(), models...); err != nil {
					return err
				}
				for _, mm := range models {
					fmt.Fprintf(s.env.Err, "cqrsync: capture %s: %s (table %s)\n", verb, mm.CQRSID, mm.Table)
				}
				return nil
			})
		},
	}
	cmd.Flags().StringSliceVarP(&ids, "cqrs-id", "c", nil, "CQRS ID of a master model (repeat or comma-separate; default every master model)")
	return cmd
}

func newCaptureStatusCommand(st *state) *cobra.Command {
	var (
		ids    []string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Report which master tables have capture triggers",
		Long: `status prints, for each named master model (every one without --cqrs-id),
whether its table has capture triggers and whether they are current (what
install would install now). Exit code 0 whatever the state. --json prints
one array of {"cqrs_id", "table", "installed", "current", "partial",
"triggers"}.`,
		Example: `  cqrsync capture status
  cqrsync capture status -c account --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runOnModels(st, cmd, ids, func(s *session, models []*cqrsync.MasterModel) error {
				sts, err := trigger.StatusOf(s.ctx, s.db(), models...)
				if err != nil {
					return err
				}
				if asJSON {
					type row struct {
						CQRSID    string   `json:"cqrs_id"`
						Table     string   `json:"table"`
						Installed bool     `json:"installed"`
						Current   bool     `json:"current"`
						Partial   bool     `json:"partial"`
						Triggers  []string `json:"triggers"`
					}
					out := make([]row, len(sts))
					for i, st := range sts {
						out[i] = row{st.CQRSID, st.Table, st.Installed, st.Current, st.Partial, append([]string{}, st.Triggers...)}
					}
					b, err := json.Marshal(out)
					if err != nil {
						return err
					}
					_, err = fmt.Fprintf(s.env.Out, "%s\n", b)
					return err
				}
				var b strings.Builder
				for _, st := range sts {
					b.WriteString(st.String() + "\n")
				}
				_, err = fmt.Fprint(s.env.Out, b.String())
				return err
			})
		},
	}
	cmd.Flags().StringSliceVarP(&ids, "cqrs-id", "c", nil, "CQRS ID of a master model (repeat or comma-separate; default every master model)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
