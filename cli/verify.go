package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/internal/errtext"
	"github.com/cqrsync/cqrsync/tools"
)

// The drift check: verify on the replica side, verify-serve on the master
// side (or the master service's own mount of tools.VerifyHandler).

func newVerifyCommand(st *state) *cobra.Command {
	var (
		cqrsID, masterURL string
		repair            bool
		bucket, narrow    int
	)
	cmd := &cobra.Command{
		Use:   "verify --cqrs-id ID --master-url URL",
		Short: "Compare a replica model's rows with its master's by checksums; list (and repair) the keys that differ (replica side)",
		Long: `verify runs a drift check: it compares the replica's rows of a model with the
master's by ranges of keys, with a checksum per replicated field (the master's
field names, the values as events carry them), narrows the ranges that differ
and lists the keys whose content differs, that the replica lacks, or that only
the replica has: one line each on stdout, "differ <key> <fields>",
"missing <key>" or "extra <key>", and a summary on stderr. Unlike the diff
pipes it compares content, so it finds rows edited by hand on the replica and
values its columns cut, even at the master's revision.

The master answers over HTTP (cqrsync verify-serve, or tools.VerifyHandler
mounted in the master service): the replica needs no master credentials, and
only checksums cross the network. --repair then asks the master to send a
SYNC of each differing or missing row to this replica's queue (the master's
relay publishes them; they overwrite the row whatever its revision) and
deletes the extra rows. Rows changed while verify runs may be listed; run it
again. Each run reads both tables whole: schedule it (hourly, daily) rather
than running it in a loop.`,
		Example: `  cqrsync verify -c account --master-url http://master:8089/cqrsync/verify
  cqrsync verify -c account --master-url http://master:8089/cqrsync/verify --repair`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cqrsID == "" {
				return UsageError{Err: errors.New("--cqrs-id is required")}
			}
			if !strings.HasPrefix(masterURL, "http://") && !strings.HasPrefix(masterURL, "https://") {
				return UsageError{Err: errtext.Errorf("--master-url %q: want the http(s) URL where the master serves verify (cqrsync verify-serve on the master)", masterURL)}
			}
			if bucket < 2 || narrow < 2 || narrow >= bucket {
				return UsageError{Err: errtext.Errorf("--bucket %d and --narrow %d: want 2 <= --narrow < --bucket", bucket, narrow)}
			}
			check := func(app *App) error { return checkModel("replica", cqrsID, app.Replica.Models()) }
			return st.run(cmd, Needs{DB: true, Replica: true, Queue: repair}, check, func(s *session) error {
				client := tools.NewVerifyClient(masterURL, &http.Client{Timeout: 10 * time.Minute})
				defer client.CloseIdleConnections()
				start := time.Now()
				rep, err := tools.Verify(s.ctx, client, tools.NewLocalReplica(s.app.Replica, s.ex()), cqrsID, &tools.VerifyOpts{
					Sizes: []int{bucket, narrow}, Repair: repair, Queue: s.app.Queue,
				})
				if rep != nil {
					printVerifyReport(s, rep, client, time.Since(start))
				}
				return err
			})
		},
	}
	f := cmd.Flags()
	f.StringVarP(&cqrsID, "cqrs-id", "c", "", "CQRS ID of the model (required)")
	f.StringVar(&masterURL, "master-url", "", "URL of the master's verify endpoint (required), e.g. http://master:8089/cqrsync/verify")
	f.BoolVar(&repair, "repair", false, "resend the differing and missing rows to this replica's queue and delete the extra rows")
	f.IntVar(&bucket, "bucket", 4096, "keys per checksum in the first pass over the table")
	f.IntVar(&narrow, "narrow", 64, "keys per checksum when narrowing a range that differs (then key by key)")
	return cmd
}

func printVerifyReport(s *session, rep *tools.VerifyReport, client *tools.VerifyClient, took time.Duration) {
	key := func(k any) string {
		b, err := cqrsync.AppendJSON(nil, k)
		if err != nil {
			return fmt.Sprint(k)
		}
		return string(b)
	}
	for i, k := range rep.Differ {
		fmt.Fprintf(s.env.Out, "differ %s %s\n", key(k), strings.Join(rep.DifferFields[i], ","))
	}
	for _, k := range rep.Missing {
		fmt.Fprintf(s.env.Out, "missing %s\n", key(k))
	}
	for _, k := range rep.Extra {
		fmt.Fprintf(s.env.Out, "extra %s\n", key(k))
	}
	sent, received := client.BytesExchanged()
	fmt.Fprintf(s.env.Err, "%s: %d differ, %d missing, %d extra; fields %s; rows read: master %d, replica %d; %d requests, %d bytes exchanged; %s\n",
		rep.CQRSID, len(rep.Differ), len(rep.Missing), len(rep.Extra), strings.Join(rep.Fields, ","),
		rep.MasterRows, rep.ReplicaRows, rep.Requests, sent+received, took.Round(time.Millisecond))
	if rep.Resynced > 0 || rep.Deleted > 0 {
		fmt.Fprintf(s.env.Err, "repaired: %d SYNC(s) sent to the outbox for queue %s, %d extra row(s) deleted\n", rep.Resynced, s.app.Queue, rep.Deleted)
	}
}

func newVerifyServeCommand(st *state) *cobra.Command {
	var listen, path string
	cmd := &cobra.Command{
		Use:   "verify-serve --listen ADDR",
		Short: "Serve the master side of verify over HTTP (master side)",
		Long: `verify-serve answers the drift checks of replicas (cqrsync verify) with
checksums of this master's rows, and enqueues the SYNCs a verify --repair
asks for (the master's relay sends them). It never sends row contents. It
does no authentication: listen on a private address, or put it behind a proxy
that checks credentials; a service can instead mount tools.VerifyHandler
behind its own authentication. It runs until interrupted.`,
		Example: `  cqrsync verify-serve --listen 10.0.0.5:8089
  replica$ cqrsync verify -c account --master-url http://10.0.0.5:8089/cqrsync/verify`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if listen == "" {
				return UsageError{Err: errors.New("--listen is required, e.g. --listen 127.0.0.1:8089")}
			}
			if !strings.HasPrefix(path, "/") {
				return UsageError{Err: errtext.Errorf("--path %q must start with /", path)}
			}
			return st.run(cmd, Needs{DB: true, Master: true}, nil, func(s *session) error {
				ln, err := net.Listen("tcp", listen)
				if err != nil {
					return errtext.Errorf("--listen %s: %w", listen, err)
				}
				mux := http.NewServeMux()
				mux.Handle(path, tools.VerifyHandler(tools.NewLocalMaster(s.app.Master, s.ex())))
				srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
				fmt.Fprintf(s.env.Err, "verify-serve: listening on http://%s%s\n", ln.Addr(), path)
				done := make(chan error, 1)
				go func() { done <- srv.Serve(ln) }()
				select {
				case err := <-done:
					return err
				case <-s.ctx.Done():
				}
				_ = srv.Close()
				<-done
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "", "address to listen on (required), e.g. 127.0.0.1:8089")
	f.StringVar(&path, "path", "/cqrsync/verify", "URL path of the endpoint")
	return cmd
}

// backgroundVerify is consume's drift check: every interval, a verify of
// each consumed model against the master's verify endpoint, repairing what
// it finds unless dryRun.
type backgroundVerify struct {
	every     time.Duration
	masterURL string
	dryRun    bool
}

func (b *backgroundVerify) add(cmd *cobra.Command) {
	f := cmd.Flags()
	f.DurationVar(&b.every, "verify-every", 0, "run a drift check (see verify) of every consumed model this often, e.g. 1h, and repair what it finds; 0: never")
	f.StringVar(&b.masterURL, "verify-master-url", "", "the master's verify endpoint, for --verify-every")
	f.BoolVar(&b.dryRun, "verify-dry-run", false, "with --verify-every: log what the drift check finds, repair nothing")
}

// check validates the settings, once merged with the App's (resolve).
func (b *backgroundVerify) check() error {
	switch {
	case b.every < 0:
		return UsageError{Err: errtext.Errorf("--verify-every must not be negative, got %v", b.every)}
	case b.every == 0 && b.masterURL != "":
		return UsageError{Err: errors.New("--verify-master-url needs --verify-every, e.g. --verify-every 1h")}
	case b.every > 0 && !strings.HasPrefix(b.masterURL, "http://") && !strings.HasPrefix(b.masterURL, "https://"):
		return UsageError{Err: errtext.Errorf("--verify-every needs --verify-master-url, the http(s) URL where the master serves verify (cqrsync verify-serve), got %q", b.masterURL)}
	}
	return nil
}

// resolve fills in the App's settings where the flags were not given, and
// checks the result.
func (b *backgroundVerify) resolve(cmd *cobra.Command, app *App) error {
	if !cmd.Flags().Changed("verify-every") {
		b.every = app.Verify.Every
	}
	if !cmd.Flags().Changed("verify-master-url") {
		b.masterURL = app.Verify.MasterURL
	}
	return b.check()
}

// start runs the checks until the returned stop is called; the first one
// runs after one interval.
func (b *backgroundVerify) start(s *session, cqrsIDs []string) (stop func()) {
	if b.every == 0 {
		return func() {}
	}
	ctx, cancel := context.WithCancel(s.ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		client := tools.NewVerifyClient(b.masterURL, &http.Client{Timeout: b.every})
		defer client.CloseIdleConnections()
		tick := time.NewTicker(b.every)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			for _, id := range cqrsIDs {
				rep, err := tools.Verify(ctx, client, tools.NewLocalReplica(s.app.Replica, s.ex()), id, &tools.VerifyOpts{Repair: !b.dryRun, Queue: s.app.Queue})
				switch {
				case ctx.Err() != nil:
					return
				case err != nil:
					s.log.Error("drift check failed", "cqrs_id", id, "error", err)
				case rep.Clean():
					s.log.Info("drift check: replica matches master", "cqrs_id", id, "master_rows", rep.MasterRows, "replica_rows", rep.ReplicaRows)
				default:
					s.log.Warn("drift check: replica differs from master", "cqrs_id", id, "differ", rep.Differ, "missing", rep.Missing, "extra", rep.Extra,
						"resynced", rep.Resynced, "deleted", rep.Deleted)
				}
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}
