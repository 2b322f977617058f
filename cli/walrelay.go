package cli

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/cqrsync/cqrsync/internal/errtext"
	"github.com/cqrsync/cqrsync/outbox/pgwal"
)

// runWALRelay is the relay command for a master with outbox: wal.
func runWALRelay(s *session, tr *Transport, batch int) error {
	w := s.app.WAL
	relay, err := pgwal.NewRelay(&pgwal.Config{
		ConnString: w.ConnString, Slot: w.Slot, Publication: w.Publication,
		Publisher: tr.Publisher, BatchSize: batch, Logger: s.log,
	})
	if err != nil {
		return UsageError{Err: err}
	}
	if err := relay.Start(s.ctx); err != nil {
		return err
	}
	t := time.NewTimer(connectTimeout)
	select {
	case <-relay.Started():
		if s.ctx.Err() == nil {
			fmt.Fprintf(s.env.Err, "cqrsync: relaying the write-ahead log to the broker (slot %s); stop with SIGTERM or Ctrl-C\n", slotName(w))
		}
	case <-t.C:
		fmt.Fprintf(s.env.Err, "cqrsync: not streaming slot %s yet (in use by another relay, or PostgreSQL unreachable: see the log); retrying\n", slotName(w))
	case <-s.ctx.Done():
	}
	t.Stop()
	<-s.ctx.Done()
	err = relay.Stop()
	fmt.Fprintf(s.env.Err, "cqrsync: relay stopped: %d event(s) published; PostgreSQL keeps the WAL of later events for slot %s until a relay runs again\n", relay.Published(), slotName(w))
	return err
}

func slotName(w *WALOutbox) string {
	if w.Slot == "" {
		return pgwal.DefaultSlot
	}
	return w.Slot
}

// walStatus is outbox status for a master with outbox: wal.
func walStatus(s *session, asJSON bool) error {
	w := s.app.WAL
	st, err := pgwal.ReadStatus(s.ctx, s.ex(), &pgwal.StatusParams{Slot: w.Slot, Publication: w.Publication, PeekOldest: true})
	if err != nil {
		return err
	}
	if asJSON {
		out := struct {
			Slot          string     `json:"slot"`
			Exists        bool       `json:"exists"`
			Active        bool       `json:"active"`
			LagBytes      int64      `json:"lag_bytes"`
			RetainedBytes int64      `json:"retained_bytes"`
			WALStatus     string     `json:"wal_status"`
			Oldest        *time.Time `json:"oldest"`
			OldestAgeS    float64    `json:"oldest_age_seconds"`
		}{st.Slot, st.Exists, st.Active, st.LagBytes, st.RetainedBytes, st.WALStatus, nil, st.Age.Seconds()}
		if !st.Oldest.IsZero() {
			out.Oldest = &st.Oldest
		}
		b, err := json.Marshal(out)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(s.env.Out, "%s\n", b)
		return err
	}
	if !st.Exists {
		_, err := fmt.Fprintf(s.env.Out, "slot %s: does not exist: start cqrsync relay before the master captures (events captured before the slot exists are not sent)\n", st.Slot)
		return err
	}
	relay := "no relay streams it"
	if st.Active {
		relay = fmt.Sprintf("a relay streams it (pid %d)", st.ActivePID)
	}
	age := "no event waiting"
	switch {
	case !st.Oldest.IsZero():
		age = fmt.Sprintf("the oldest waiting event captured %s ago (%s)", roundDuration(st.Age), st.Oldest.UTC().Format(time.RFC3339))
	case st.Active && st.Age > 0:
		age = fmt.Sprintf("confirm lag %s", roundDuration(st.Age))
	}
	if _, err := fmt.Fprintf(s.env.Out, "slot %s: %s; lag %d bytes, %d bytes of WAL kept for it (%s); %s\n",
		st.Slot, relay, st.LagBytes, st.RetainedBytes, st.WALStatus, age); err != nil {
		return err
	}
	if !st.Active {
		fmt.Fprintf(s.env.Err, "warning: no relay streams slot %s: PostgreSQL keeps all WAL from its position on until one does, and fills the disk if none ever does. Start cqrsync relay, or drop the slot (cqrsync outbox drop-slot) if this master no longer uses outbox: wal.\n", st.Slot)
	}
	return nil
}

func newDropSlotCommand(st *state) *cobra.Command {
	var slot string
	cmd := &cobra.Command{
		Use:   "drop-slot",
		Short: "Drop the WAL relay's replication slot, so PostgreSQL stops keeping WAL for it",
		Long: `drop-slot drops the logical replication slot of the WAL outbox (master.outbox:
wal) on the master database. Do it when no relay will stream the slot again:
while the slot exists, PostgreSQL keeps the WAL from its position on. Events
not yet published are lost with it (re-send the rows with cqrsync sync). A slot
a relay is streaming cannot be dropped: stop the relay first.`,
		Example: `  cqrsync outbox drop-slot
  cqrsync outbox drop-slot --slot billing_outbox`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return st.run(cmd, Needs{DB: true}, nil, func(s *session) error {
				if !cmd.Flags().Changed("slot") && s.app.WAL != nil {
					slot = slotName(s.app.WAL)
				}
				if slot == "" {
					return UsageError{Err: errtext.Errorf("name the slot with --slot (the configuration has no master.outbox: wal)")}
				}
				if err := pgwal.DropSlot(s.ctx, s.ex(), slot); err != nil {
					return err
				}
				fmt.Fprintf(s.env.Err, "cqrsync: replication slot %s dropped\n", slot)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&slot, "slot", "", "the slot (default: master.wal_slot, else cqrsync)")
	return cmd
}
