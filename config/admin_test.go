package config_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync/cli"
	"github.com/cqrsync/cqrsync/config"
	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/transport/memory"
)

// TestAdminCommandFromTheFile: cqrsync admin takes its credentials from the
// environment (or the file), refuses to start without, and shows the
// configuration's URLs with their passwords redacted.
func TestAdminCommandFromTheFile(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		config.EnvConfig:      exampleFile(t),
		config.EnvDatabaseURL: "sqlite://" + filepath.Join(t.TempDir(), "service.db") + "?mode=rwc",
	}
	broker := memory.NewBroker(nil)
	opts := config.CLI(&config.CLIOpts{
		Getenv: func(k string) string { return env[k] },
		OpenTransport: func(context.Context, *config.Config, *slog.Logger) (*cli.Transport, error) {
			pub := broker.Publisher()
			return &cli.Transport{Publisher: pub, Subscriber: broker.Subscriber(), DeadLetters: broker, Close: pub.Close}, nil
		},
	})
	var out, errOut bytes.Buffer
	if code := cli.Run(t.Context(), &cli.Env{Out: &out, Err: &errOut}, opts, []string{"admin", "--listen", "127.0.0.1:0"}); code != cli.ExitUsage || !strings.Contains(errOut.String(), "set admin.token (or CQRSYNC_ADMIN_TOKEN)") {
		t.Fatalf("admin without credentials: exit %d, stderr %q; want 2 naming admin.token", code, errOut.String())
	}

	const token = "token-from-the-environment-0123"
	env[config.EnvAdminToken] = token
	ctx, cancel := context.WithCancel(t.Context())
	stderr := new(cqrsynctesting.SyncBuffer)
	done := make(chan int, 1)
	go func() {
		done <- cli.Run(ctx, &cli.Env{Out: io.Discard, Err: stderr}, opts, []string{"admin", "--listen", "127.0.0.1:0"})
	}()
	defer func() { cancel(); <-done }()
	if !stderr.WaitFor("stop with SIGTERM", 20*time.Second, nil) {
		t.Fatalf("admin did not start:\n%s", stderr)
	}
	addr := regexp.MustCompile(`http://[^/]+/`).FindString(stderr.String())
	req, _ := http.NewRequestWithContext(t.Context(), "GET", addr, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), ":xxxxx@localhost:5672/") || strings.Contains(string(page), "guest:guest") {
		t.Fatalf("overview = %d; want the broker URL with its password redacted:\n%s", resp.StatusCode, page)
	}
	cancel()
	if code := <-done; code != cli.ExitOK {
		t.Fatalf("admin exit %d:\n%s", code, stderr)
	}
	done <- 0 // for the deferred wait
}
