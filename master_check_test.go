package cqrsync_test

import (
	"database/sql"
	"strings"
	"testing"

	"github.com/cqrsync/cqrsync"
)

// TestMasterMetadataPerModel: two models on one table, one declaring the
// name column JSON, each reads the column with its own types, whichever
// model is used first (the table's metadata used to be cached per table,
// so the first model's Types leaked to the other).
func TestMasterMetadataPerModel(t *testing.T) {
	t.Parallel()
	for _, first := range []string{"as_json", "as_text"} {
		t.Run(first+" first", func(t *testing.T) {
			t.Parallel()
			b := setupMaster(t,
				&cqrsync.MasterModel{CQRSID: "as_json", Table: "item", Fields: []string{"id", "name"}, Types: map[string]cqrsync.ValueType{"name": cqrsync.TypeJSON}},
				&cqrsync.MasterModel{CQRSID: "as_text", Table: "item", Fields: []string{"id", "name"}},
			)
			order := []string{"as_json", "as_text"}
			if first == "as_text" {
				order = []string{"as_text", "as_json"}
			}
			if err := b.inTx(t, func(tx *sql.Tx) error {
				if _, err := tx.ExecContext(t.Context(), `INSERT INTO item (id, name) VALUES (1, '{"a":1}')`); err != nil {
					return err
				}
				for _, id := range order {
					if err := b.master.Create(t.Context(), tx, id, 1); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			want := map[string]string{"as_json": `"name":{"a":1}`, "as_text": `"name":"{\"a\":1}"`}
			bodies := b.outbox(t)
			if len(bodies) != 2 {
				t.Fatalf("outbox holds %d events, want 2", len(bodies))
			}
			for i, id := range order {
				if !strings.Contains(bodies[i], want[id]) {
					t.Errorf("model %s sent %s, want instance_data with %s", id, bodies[i], want[id])
				}
			}
		})
	}
}
