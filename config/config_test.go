package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/config"
	_ "github.com/cqrsync/cqrsync/config/postgres" // the example's URL
	_ "github.com/cqrsync/cqrsync/config/postgres" // the example's URL
)

// exampleFile is the example configuration committed at the repository root.
func exampleFile(t *testing.T) string {
	t.Helper()
	path, err := filepath.Abs(filepath.Join("..", "cqrsync.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return path
}

func TestExampleFile(t *testing.T) {
	t.Parallel()
	c, err := config.Load(exampleFile(t), &config.LoadOpts{Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	if c.Database.URL != "postgres://app:secret@localhost:5432/app?sslmode=disable" || c.Database.MaxOpenConns != 10 ||
		c.Transport.URL != "amqp://guest:guest@localhost:5672/" || c.Transport.Exchange != "cqrs" || c.Queue != "billing_replica" {
		t.Fatalf("connections: %+v %+v %q", c.Database, c.Transport, c.Queue)
	}
	if c.Master.MessageTTL != 24*time.Hour || c.Master.RelayBatch != 500 || c.Master.RelayPollInterval != 200*time.Millisecond ||
		c.Master.Outbox != cqrsync.OutboxTable || c.Master.WALSlot != "cqrsync" || c.Master.WALPublication != "cqrsync" {
		t.Errorf("master settings: %+v", c.Master)
	}
	if c.Replica.Workers != 1 || c.Replica.Batch != 100 || c.Replica.TombstoneRetention != 7*24*time.Hour || c.ReplicaConfig().WaitPoll != time.Second || c.ConsumerConfig().ResendInterval != time.Minute || c.ConsumerConfig().NoResend ||
		c.Replica.Retry == nil || *c.Replica.Retry.MaxRetries != 30 || c.Replica.Retry.Delay != 2*time.Second {
		t.Errorf("replica settings: %+v", c.Replica)
	}
	masters := c.MasterModels()
	if len(masters) != 2 {
		t.Fatalf("masters: %+v", masters)
	}
	want := &cqrsync.MasterModel{
		CQRSID: "account", Table: "account", PK: "id", Fields: []string{"id", "name", "email", "plan", "created"},
		TrackedFields: []string{"plan"}, Types: map[string]cqrsync.ValueType{"created": cqrsync.TypeDateTime},
	}
	if !reflect.DeepEqual(masters[0], want) {
		t.Errorf("masters[0] = %+v\nwant %+v", masters[0], want)
	}
	if m := masters[1]; m.CQRSID != "invoice" || m.PK != "id" || !reflect.DeepEqual(m.Fields, []string{"id", "number", "total", "customer_id"}) ||
		!reflect.DeepEqual(m.FieldNames, map[string]string{"customer_id": "customer"}) {
		t.Errorf("masters[1] = %+v", m)
	}
	replicas := c.ReplicaModels()
	if len(replicas) != 1 {
		t.Fatalf("replicas: %+v", replicas)
	}
	r := replicas[0]
	if r.CQRSID != "customer" || r.Table != "customer_copy" || r.Mapping["name"] != "full_name" || r.QueryTimeout != 5*time.Second ||
		r.Retry == nil || r.Retry.MaxRetries != 5 || r.Types["email"] != cqrsync.TypeString {
		t.Errorf("replicas[0] = %+v", r)
	}
	// max_delay makes the delay exponential: 1s, 2s, 4s, ... up to 30s, ±25%.
	if d := r.Retry.Delay(10); d < 22*time.Second || d > 38*time.Second {
		t.Errorf("retry delay 10 = %v, want about 30s", d)
	}
	cc := c.ConsumerConfig()
	if cc.Workers != 1 || cc.BatchSize != 100 || cc.Prefetch != 1001 || cc.DeadLetterTTL != 10*24*time.Hour || cc.Retry.Delay(1) != 2*time.Second {
		t.Errorf("consumer config: %+v", cc)
	}
	if got := c.Passwords(); !reflect.DeepEqual(got, []string{"secret", "guest"}) {
		t.Errorf("passwords = %q", got)
	}
}

func TestEnvironmentOverrides(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		config.EnvDatabaseURL:  "sqlite:override.db",
		config.EnvTransportURL: "amqps://u:p@broker:5671/",
		config.EnvQueue:        "other_replica",
	}
	c, err := config.Load(exampleFile(t), &config.LoadOpts{Getenv: func(k string) string { return env[k] }})
	if err != nil {
		t.Fatal(err)
	}
	if c.Database.URL != "sqlite:override.db" || c.Transport.URL != "amqps://u:p@broker:5671/" || c.Queue != "other_replica" {
		t.Fatalf("overrides not applied: %+v %+v %q", c.Database, c.Transport, c.Queue)
	}
	if c.DatabaseSource() != config.EnvDatabaseURL {
		t.Errorf("database source = %q", c.DatabaseSource())
	}
	// A bad value from the environment is reported under its name.
	env[config.EnvDatabaseURL] = "oracle://x"
	_, err = config.Load(exampleFile(t), &config.LoadOpts{Getenv: func(k string) string { return env[k] }})
	if err == nil || !strings.Contains(err.Error(), config.EnvDatabaseURL+": bad database URL") {
		t.Fatalf("err = %v", err)
	}
}

func TestMissingFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "cqrsync.yaml")
	if _, err := config.Load(path, nil); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("Load of a missing file = %v", err)
	}
	c, err := config.Load(path, &config.LoadOpts{Optional: true, Getenv: func(k string) string {
		return map[string]string{config.EnvDatabaseURL: "sqlite:a.db"}[k]
	}})
	if err != nil || c.File != "" || c.Database.URL != "sqlite:a.db" || len(c.Masters) != 0 {
		t.Fatalf("optional missing file: %+v, %v", c, err)
	}
}

// TestProblems checks that every problem is reported at once, with its key
// and line.
func TestProblems(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, yaml string
		want       []string
	}{
		{"all at once", `
database:
  url: postgres://u:hunter2@db/app
  max_conns: 3
queue: bad.name
masters:
  - cqrs_id: account
    table: account
    fields: [name, email]
    types: {created: timestamp}
  - cqrs_id: account
    table: account2
replicas:
  - cqrs_id: customer
    table: customer_copy
  - cqrs_id: invoice
    mapping: {name: title}
    retry: {max_retries: -1, delay: soon}
`, []string{
			"cqrsync.yaml: 9 problems:",
			"database.max_conns: unknown key (known: max_open_conns, url) (line 4)",
			`masters[0].fields: must include the primary key "id" (line 9)`,
			`masters[0].types.created: unknown type "timestamp"`,
			`masters[1].cqrs_id: "account" is already declared by masters[0]`,
			"replicas[1].retry.max_retries: want a whole number, 0 or more, got \"-1\" (line 18)",
			`replicas[1].retry.delay: want a duration like 500ms, 30s, 1h or 7d, got "soon" (line 18)`,
			"replicas[1].table: required (line 16)",
			`replicas[1].mapping: maps no master field to the primary key "id"`,
			`queue: "bad.name" is not a queue name`,
		}},
		{"not YAML", "masters: [", []string{"(file): not valid YAML"}},
		{"wrong shapes", "masters: {cqrs_id: a}\nreplicas:\n  - just-a-string\n", []string{
			"masters: want a list, got a mapping (line 1)",
			`replicas[0]: want a mapping of keys to values, got "just-a-string" (line 3)`,
		}},
		{"bad transport", "transport:\n  url: http://broker\n", []string{`transport.url: scheme "http" is not supported`}},
		{"bad ttl and bool", "master:\n  message_ttl: 0s\n  auto_update_fields: maybe\n", []string{
			`master.message_ttl: want a duration like 1h or 7d, or none, got "0s"`,
			`master.auto_update_fields: want true or false, got "maybe"`,
		}},
		{"bad names", "masters:\n  - cqrs_id: a.b\n    table: t\n", []string{`masters[0].cqrs_id: "a.b" is not a valid name`}},
		{"bad outbox", "master:\n  outbox: disk\n", []string{`master.outbox: "disk": use table (the cqrs_outbox table, every database) or wal`}},
		{"bad field renames", "masters:\n  - cqrs_id: a\n    table: t\n    fields: [id, {owner_id: owner, x: y}, {z: [1]}]\n", []string{
			"masters[0].fields[1]: want a column name, or one {column: name on the wire} like {owner_id: owner}, got 2 entries",
			"masters[0].fields[2]: want {column: name on the wire}, like {owner_id: owner}",
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := config.Parse("cqrsync.yaml", []byte(c.yaml), nil)
			var ce *config.Error
			if !errors.As(err, &ce) {
				t.Fatalf("Parse = %v, want a *config.Error", err)
			}
			msg := err.Error()
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error lacks %q:\n%s", w, msg)
				}
			}
			if strings.Contains(msg, "hunter2") {
				t.Errorf("error shows a password:\n%s", msg)
			}
		})
	}
}

func TestMinimalAndEmpty(t *testing.T) {
	t.Parallel()
	for _, text := range []string{"", "# nothing\n", "---\n"} {
		c, err := config.Parse("x.yaml", []byte(text), nil)
		if err != nil || len(c.Masters) != 0 || c.Database.URL != "" {
			t.Errorf("Parse(%q) = %+v, %v", text, c, err)
		}
	}
	c, err := config.Parse("x.yaml", []byte("replicas:\n  - {cqrs_id: a, table: a_copy, retry: {max_retries: 0}}\nmaster: {message_ttl: none}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if rm := c.ReplicaModels()[0]; rm.PK != "id" || rm.Retry.MaxRetries != -1 || rm.Retry.Delay != nil {
		t.Errorf("replica = %+v (max_retries 0 must mean none, which the library spells -1)", rm)
	}
	if c.Master.MessageTTL != cqrsync.NoExpiry {
		t.Errorf("message_ttl none = %v", c.Master.MessageTTL)
	}
}

func TestParseDuration(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]time.Duration{"7d": 7 * 24 * time.Hour, "0d": 0, "90m": 90 * time.Minute, " 2s ": 2 * time.Second} {
		if got, err := config.ParseDuration(in); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"d", "-1d", "1.5d", "soon"} {
		if _, err := config.ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) succeeded", in)
		}
	}
}

func TestLoadUnreadable(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := config.Load(dir, nil); err == nil {
		t.Fatal("Load of a directory succeeded")
	}
	path := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(path, []byte("queue: q\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if c, err := config.Load(path, nil); err != nil || c.File != path || c.Queue != "q" {
		t.Fatalf("Load = %+v, %v", c, err)
	}
}
