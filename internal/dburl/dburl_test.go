package dburl_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"

	_ "github.com/cqrsync/cqrsync/config/mysql"
	_ "github.com/cqrsync/cqrsync/config/postgres"
	_ "github.com/cqrsync/cqrsync/config/sqlite"
	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/internal/dburl"
	"github.com/cqrsync/cqrsync/internal/testenv"
)

func TestParse(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, url          string
		kind, driver, dsn  string // dsn: a substring it must contain
		redacted, password string
		listen             bool
	}{
		{name: "postgres", url: "postgres://app:s3cret@db:5432/app?sslmode=disable", kind: "postgres", driver: "pgx",
			dsn: "postgres://app:s3cret@db:5432/app?sslmode=disable", redacted: "postgres://app:xxxxx@db:5432/app?sslmode=disable", password: "s3cret", listen: true},
		{name: "postgresql scheme", url: "postgresql://app@db/app", kind: "postgres", driver: "pgx", dsn: "postgresql://app@db/app", redacted: "postgresql://app@db/app", listen: true},
		{name: "mysql", url: "mysql://root:pw@127.0.0.1:3307/shop?tls=false", kind: "mysql", driver: "mysql",
			dsn: "root:pw@tcp(127.0.0.1:3307)/shop?parseTime=true", redacted: "mysql://root:xxxxx@127.0.0.1:3307/shop?tls=false", password: "pw"},
		{name: "mysql default port", url: "mysql://root@db/shop", kind: "mysql", driver: "mysql", dsn: "root@tcp(db:3306)/shop?", redacted: "mysql://root@db/shop"},
		{name: "sqlite absolute", url: "sqlite:///var/lib/app.db", kind: "sqlite", driver: "sqlite", dsn: "file:/var/lib/app.db?", redacted: "sqlite:///var/lib/app.db"},
		{name: "sqlite relative", url: "sqlite:data/app.db", kind: "sqlite", driver: "sqlite", dsn: "file:data/app.db?", redacted: "sqlite:data/app.db"},
		{name: "sqlite create", url: "sqlite:app.db?mode=rwc", kind: "sqlite", driver: "sqlite", dsn: "mode=rwc", redacted: "sqlite:app.db"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			u, err := dburl.Parse(c.url)
			if err != nil {
				t.Fatal(err)
			}
			if u.Kind != c.kind || u.Driver != c.driver || !strings.Contains(u.DSN, c.dsn) || u.Redacted != c.redacted || u.Password != c.password {
				t.Fatalf("Parse(%q) = %+v", c.url, u)
			}
			if u.Dialect.Name() != c.kind {
				t.Errorf("dialect %s, want %s", u.Dialect.Name(), c.kind)
			}
			if (u.ListenConnString != "") != c.listen {
				t.Errorf("ListenConnString = %q", u.ListenConnString)
			}
		})
	}
}

func TestParseMySQLDSN(t *testing.T) {
	t.Parallel()
	u, err := dburl.Parse("mysql://us%40er:p%3Ass@db:3306/shop?readTimeout=5s")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := mysql.ParseDSN(u.DSN)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.User != "us@er" || cfg.Passwd != "p:ss" || cfg.DBName != "shop" || !cfg.ParseTime || cfg.ReadTimeout.String() != "5s" || cfg.Params["time_zone"] != "'+00:00'" {
		t.Fatalf("DSN %q parses to %+v", u.DSN, cfg)
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	cases := []struct{ name, url, want string }{
		{"empty", "", "empty"},
		{"no scheme", "localhost/db", "no scheme"},
		{"unknown scheme", "oracle://x", `unknown scheme "oracle"`},
		{"postgres without host", "postgres:///db", "no host"},
		{"mysql without database", "mysql://root:topsecret@db:3306/", "names no database"},
		{"bad URL keeps the password secret", "postgres://u:top secret%zz@db/x", "details withheld"},
		{"sqlite without file", "sqlite:", "has no file"},
		{"sqlite in memory", "sqlite::memory:", "in-memory"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := dburl.Parse(c.url)
			if !errors.Is(err, dburl.ErrBadURL) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Parse(%q) = %v, want ErrBadURL mentioning %q", c.url, err, c.want)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Fatalf("error shows the password: %v", err)
			}
		})
	}
}

func TestOpenSQLite(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "app.db")
	if _, _, err := dburl.Open("sqlite://" + path); !errors.Is(err, dburl.ErrNoFile) {
		t.Fatalf("Open of a missing file = %v, want ErrNoFile", err)
	}
	db, u, err := dburl.Open("sqlite://" + path + "?mode=rwc")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var mode string
	if err := db.QueryRowContext(t.Context(), "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" || u.Kind != "sqlite" {
		t.Fatalf("journal_mode = %q, %v", mode, err)
	}
	db2, _, err := dburl.Open("sqlite://" + path)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	if err := db2.PingContext(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func TestOpenServers(t *testing.T) {
	t.Parallel()
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		db, _, err := dburl.Open(testenv.PostgresURL(t))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if err := db.PingContext(t.Context()); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("mysql", func(t *testing.T) {
		t.Parallel()
		cfg, err := mysql.ParseDSN(cqrsynctesting.MySQLDSN(t))
		if err != nil {
			t.Fatal(err)
		}
		db, _, err := dburl.Open("mysql://" + cfg.User + ":" + cfg.Passwd + "@" + cfg.Addr + "/" + cfg.DBName)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var tz string
		if err := db.QueryRowContext(t.Context(), "SELECT @@session.time_zone").Scan(&tz); err != nil || tz != "+00:00" {
			t.Fatalf("session time zone = %q, %v", tz, err)
		}
	})
}
