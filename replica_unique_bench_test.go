package cqrsync_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/cqrsync/cqrsync"
	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
	"github.com/cqrsync/cqrsync/sqldialect"
	"github.com/cqrsync/cqrsync/sqldialect/databasesql"
)

// BenchmarkReplicaApplyMySQL measures the replica's writes on MariaDB into
// a plain table (written with INSERT … ON DUPLICATE KEY UPDATE) and into
// one with a unique key besides the primary key (written by key: an
// UPDATE or a plain INSERT, see sqldialect.UpsertParams.UniqueKeys), one
// event per transaction (Apply) and 100 (ApplyBatch). The events are b.N
// SAVEs over b.N/2 keys: every key is created, then updated once. One
// connection; events/s is the metric.
func BenchmarkReplicaApplyMySQL(b *testing.B) {
	for _, unique := range []bool{false, true} {
		for _, batch := range []int{1, 100} {
			b.Run(fmt.Sprintf("unique=%v/batch=%d", unique, batch), func(b *testing.B) { benchReplicaApplyMySQL(b, unique, batch) })
		}
	}
}

func benchReplicaApplyMySQL(b *testing.B, unique bool, batch int) {
	email := "email VARCHAR(100) NOT NULL"
	if unique {
		email += " UNIQUE"
	}
	db := cqrsynctesting.OpenMySQL(b, "CREATE TABLE member (id BIGINT NOT NULL PRIMARY KEY, "+email+
		", payload TEXT NOT NULL, cqrs_revision INTEGER NOT NULL, cqrs_updated DATETIME(6) NOT NULL)")
	ctx := b.Context()
	replica, err := cqrsync.NewReplica(databasesql.New(db, sqldialect.MySQL()), nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := replica.Register(&cqrsync.ReplicaModel{CQRSID: "member", Table: "member"}); err != nil {
		b.Fatal(err)
	}
	n := max(b.N, 2)
	keys := (n + 1) / 2
	updated := cqrsync.FormatDateTime(time.Now().UTC().Truncate(time.Microsecond))
	ps := make([]*cqrsync.Payload, 0, n)
	for rev := range int64(2) {
		for id := int64(1); id <= int64(keys) && len(ps) < n; id++ {
			ps = append(ps, &cqrsync.Payload{SignalType: cqrsync.SignalSave, CQRSID: "member", InstancePK: id, Meta: cqrsync.Object{},
				InstanceData: cqrsync.Object{{Key: "id", Value: id}, {Key: "email", Value: fmt.Sprintf("u%d@x", id)},
					{Key: "payload", Value: fmt.Sprintf("r%d", rev)}, {Key: "cqrs_revision", Value: rev}, {Key: "cqrs_updated", Value: updated}}})
		}
	}
	b.ResetTimer()
	start := time.Now()
	for first := 0; first < len(ps); first += batch {
		chunk := ps[first:min(len(ps), first+batch)]
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			b.Fatal(err)
		}
		if batch == 1 {
			_, err = replica.Apply(ctx, sqldialect.FromSQL(tx), chunk[0])
		} else {
			_, err = replica.ApplyBatch(ctx, sqldialect.FromSQL(tx), chunk)
		}
		if err != nil {
			_ = tx.Rollback()
			b.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(len(ps))/time.Since(start).Seconds(), "events/s")
}
