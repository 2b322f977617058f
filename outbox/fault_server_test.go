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

func mysqlMaster() masterDB {
	return masterDB{
		name: "mysql", dialect: sqldialect.MySQL(), driver: "mysql", timestamp: "DATETIME(6)",
		newDSN: func(t *testing.T) string { return cqrsynctesting.MySQLDSN(t) }, concurrentWriters: true,
	}
}

func init() { extraMasters = append(extraMasters, mysqlMaster()) }

func TestOutboxFaultsMySQL(t *testing.T) {
	t.Parallel()
	runOutboxFaults(t, mysqlMaster())
}
