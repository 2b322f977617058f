package outbox_test

import (
	"testing"

	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/sqldialect"
)

func postgresMaster() masterDB {
	return masterDB{
		name: "postgres", dialect: sqldialect.Postgres(), driver: "pgx", timestamp: "TIMESTAMPTZ",
		newDSN: func(t *testing.T) string { return cqrsynctesting.PostgresDSN(t) }, concurrentWriters: true,
	}
}

func init() { extraMasters = append(extraMasters, postgresMaster()) }

func TestOutboxFaultsPostgres(t *testing.T) {
	t.Parallel()
	runOutboxFaults(t, postgresMaster())
}
