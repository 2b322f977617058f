package cli_test

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/cqrsync/cqrsync/cli"
)

// withAdmin returns opts whose setup adds the admin settings to the App.
func withAdmin(opts *cli.Options, a cli.AdminSettings) *cli.Options {
	return &cli.Options{Setup: func(ctx context.Context, req *cli.SetupRequest) (*cli.App, error) {
		app, err := opts.Setup(ctx, req)
		if app != nil {
			app.Admin = a
		}
		return app, err
	}}
}

func TestAdminRefusesToStartWithoutCredentials(t *testing.T) {
	t.Parallel()
	b := setup(t)
	run(t, b.master, "", "admin", "--listen", "127.0.0.1:0").fails(t, cli.ExitUsage, "no credentials configured: set admin.token")
	run(t, withAdmin(b.master, cli.AdminSettings{Token: "short"}), "", "admin", "--listen", "127.0.0.1:0").fails(t, cli.ExitUsage, "use at least 16")
	run(t, withAdmin(b.master, cli.AdminSettings{Token: "0123456789abcdef0123"}), "", "admin").fails(t, cli.ExitUsage, "--listen is required")
}

var adminAddrRE = regexp.MustCompile(`admin page on (http://[^/]+/)`)

func TestAdminServes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const token = "0123456789abcdef0123"
	opts := withAdmin(b.master, cli.AdminSettings{Token: token, Endpoints: nil})
	bg := start(t, opts, "admin", "--listen", "127.0.0.1:0", "--relay")
	bg.waitFor(t, "stop with SIGTERM")
	m := adminAddrRE.FindStringSubmatch(bg.errOut.String())
	if m == nil {
		t.Fatalf("no address on stderr:\n%s", bg.errOut.String())
	}
	get := func(auth string) (int, string) {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", m[1]+"outbox", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, _ := get(""); code != http.StatusUnauthorized {
		t.Fatalf("GET outbox without credentials = %d; want 401", code)
	}
	code, page := get("Bearer " + token)
	if code != http.StatusOK || !strings.Contains(page, `id="backlog-rows">0<`) || !strings.Contains(page, `<b id="relay-state">running</b>`) {
		t.Fatalf("GET outbox with the token = %d:\n%s", code, page)
	}
	res := bg.stop()
	if res.code != cli.ExitOK || !strings.Contains(res.errOut, "admin page stopped") {
		t.Fatalf("admin exit %d, stderr:\n%s", res.code, res.errOut)
	}
}

func TestAdminRelayRefusedOnAWALMaster(t *testing.T) {
	t.Parallel()
	b := setup(t)
	opts := withAdmin(b.master, cli.AdminSettings{Token: "0123456789abcdef0123"})
	wal := &cli.Options{Setup: func(ctx context.Context, req *cli.SetupRequest) (*cli.App, error) {
		app, err := opts.Setup(ctx, req)
		if app != nil {
			app.WAL = &cli.WALOutbox{ConnString: "postgres://unused"}
		}
		return app, err
	}}
	run(t, wal, "", "admin", "--listen", "127.0.0.1:0", "--relay").fails(t, cli.ExitUsage, "this master's outbox is the WAL")
}
