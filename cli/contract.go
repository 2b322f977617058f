package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/internal/errtext"
)

func newSchemaCommand(st *state) *cobra.Command {
	var cqrsIDs []string
	cmd := &cobra.Command{
		Use:   "schema [--cqrs-id ID]...",
		Short: "Describe what the master publishes, for a replica's contract check (master side)",
		Long: `schema writes, on stdout, a JSON document of the master's models: for each,
the keys of instance_data in order with their wire value types and the master
columns' SQL types and nullability. Give it to "cqrsync check --schema" on a
replica, which reports the fields it would refuse, cut, drop or not read
before the first event fails.`,
		Example: `  cqrsync schema > master-schema.json
  cqrsync schema -c account | ssh replica cqrsync check --schema -`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			check := func(app *App) error {
				for _, id := range cqrsIDs {
					if err := checkModel("master", id, app.Master.Models()); err != nil {
						return err
					}
				}
				return nil
			}
			return st.run(cmd, Needs{DB: true, Master: true}, check, func(s *session) error {
				schema, err := s.app.Master.Schema(s.ctx, s.ex(), cqrsIDs...)
				if err != nil {
					return err
				}
				return schema.WriteJSON(s.env.Out)
			})
		},
	}
	cmd.Flags().StringSliceVarP(&cqrsIDs, "cqrs-id", "c", nil, "describe only these models (default: every master model)")
	return cmd
}

func newCheckCommand(st *state) *cobra.Command {
	var input string
	cmd := &cobra.Command{
		Use:   "check --schema FILE",
		Short: "Compare this replica's mapping and column types with what its master publishes (replica side)",
		Long: `check reads the master's schema document ("cqrsync schema" on the master) and
compares it with this replica's models, their mapping and their tables'
column types. It prints one line per finding:

  refused    the replica database will refuse some or all events (a type it
             cannot convert, a value out of its length or range, NULL into
             NOT NULL, a required column nothing fills)
  cut        values will be stored changed (decimals rounded)
  dropped    the replica means to keep a field and loses it (its mapping
             names a field the master does not send, or a missing column),
             or registers a model the master does not publish
  unread     the master sends a key or a model this replica does not read
  unchecked  a serializer or handlers build the data: not compared

and exits 1 when any finding is refused, cut or dropped, 0 otherwise.`,
		Example: `  cqrsync check --schema master-schema.json
  ssh master cqrsync schema | cqrsync check --schema -`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if input == "" {
				return UsageError{Err: errtext.Errorf(`--schema is required: the master's schema document, "-" for stdin (write it with "cqrsync schema" on the master)`)}
			}
			in, _, closeIn, err := openInput(st.env.In, input)
			if err != nil {
				return UsageError{Err: err}
			}
			defer closeIn()
			schema, err := cqrsync.ReadSchema(in)
			if err != nil {
				return UsageError{Err: err}
			}
			return st.run(cmd, Needs{DB: true, Replica: true}, nil, func(s *session) error {
				rep, err := s.app.Replica.CheckContract(s.ctx, s.ex(), schema)
				if err != nil {
					return err
				}
				for _, f := range rep.Findings {
					fmt.Fprintln(s.env.Out, f.String())
				}
				if p := rep.Problems(); len(p) > 0 {
					return errtext.Errorf("%d finding(s) refused, cut or dropped: fix the replica's tables or mapping before it consumes (see stdout)", len(p))
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&input, "schema", "", `the master's schema document, "-" for stdin (required)`)
	return cmd
}

func newResendCommand(st *state) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "resend",
		Short: "Answer cqrsync replicas' resend requests until stopped (master side)",
		Long: `resend takes the resend requests of cqrsync replicas from the master's resend
queue (master.resend_queue) and answers each with a SYNC of the key's current
row to the asking replica's queue alone, or a DELETE if the key is gone,
through the outbox (a relay sends them). Replicas ask after a revision gap, a
key first seen past revision 0, or a dead-lettered event, at most once per key
per replica.resend_interval; the master's events name the queue in a header,
so Django replicas never ask.`,
		Example: `  cqrsync resend`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			check := func(app *App) error {
				if app.ResendQueue == "" {
					return UsageError{Err: errtext.Errorf("resend needs the master's resend queue: set master.resend_queue in the configuration")}
				}
				return nil
			}
			return st.run(cmd, Needs{DB: true, Master: true, Transport: true}, check, func(s *session) error {
				tr, err := s.transport()
				if err != nil {
					return err
				}
				r, err := cqrsync.NewResender(s.app.Master, &cqrsync.ResenderConfig{Subscriber: tr.Subscriber, Queue: s.app.ResendQueue, Logger: s.log})
				if err != nil {
					return UsageError{Err: err}
				}
				if err := r.Start(s.ctx); err != nil {
					return err
				}
				<-r.Started()
				if s.ctx.Err() == nil {
					fmt.Fprintf(s.env.Err, "cqrsync: answering resend requests on queue %s; stop with SIGTERM or Ctrl-C\n", s.app.ResendQueue)
				}
				<-s.ctx.Done()
				return r.Stop()
			})
		},
	}
	return cmd
}
