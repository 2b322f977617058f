package sqldialect

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/cqrsync/cqrsync/internal/dberr"
)

// Capture triggers make the database itself capture every INSERT, UPDATE
// and DELETE of a master table, whoever writes it (psql, a migration,
// another language): they keep cqrs_revision and cqrs_updated as the
// library's capture calls do, record a deleted key's tombstone, and write
// a row image into the outbox — the row as it now is (and was), not yet an
// event. The relay renders each row image into the django-cqrs payload
// with the master's model registry (cqrsync.Master.RenderOutbox), through
// the library capture's own serialization. Package capture/trigger is the
// user's API; these functions are its SQL.

// RowImagePrefix starts the body of every outbox row that a capture trigger
// wrote: a JSON object
//
//	{"cqrsync_trigger":1,"op":"INSERT"|"UPDATE"|"DELETE","key":"<pk as text>",
//	 "at":<Unix microseconds>,"new":{column: value, ...}|null,"old":{...}|null}
//
// whose values are PostgreSQL's row_to_json values, or on MySQL each
// column's text (CAST … AS CHAR; binary columns in hex). An event's body
// starts with {"signal_type": instead, so the two never mix up.
const RowImagePrefix = `{"cqrsync_trigger":1,`

// IsRowImage reports whether an outbox body is a capture trigger's row
// image rather than an event.
func IsRowImage(body []byte) bool { return bytes.HasPrefix(body, []byte(RowImagePrefix)) }

// CaptureMarker is the name of the transaction-local setting a library
// capture sets on PostgreSQL so the capture triggers leave its statements
// alone: the library captures them itself. On MySQL the mark is a row of
// CaptureMarksTable instead.
const CaptureMarker = "cqrsync.capture"

// CaptureMarksTable is the MySQL/MariaDB table of library capture marks:
// a library capture inserts its connection's id (CONNECTION_ID()) inside
// the writer's transaction and deletes it when its statements are done,
// and the capture triggers leave alone the writes of a connection that has
// a row there. Being a row of the transaction, a mark disappears with a
// rollback and is never seen by other sessions: unlike a user variable of
// the connection, it cannot outlive the capture on a pooled connection and
// hide the next writer's changes from the triggers. Migrate and
// InstallCaptureTriggers create the table.
const CaptureMarksTable = "cqrs_capture_marks"

// mysqlMarksDDL creates CaptureMarksTable: the statement of the MySQL
// migration, so that Migrate and capture install create the same table.
var mysqlMarksDDL = migrationStatement("mysql", "003_capture_marks.sql")

// mysqlMarkHint is the user variable a library capture sets on MySQL
// while it holds a mark. The triggers read the marks table only when it is
// set, so that writers that never capture through the library (psql,
// other languages) pay nothing for the lookup. It is a hint, not the mark:
// a hint left set by a capture whose transaction ended early only makes
// the triggers look, and find no mark. (cqrsync before the marks table
// had the variable alone, which such a capture left set on a pooled
// connection, hiding that connection's later writes from the triggers.)
const mysqlMarkHint = "@cqrsync_capture"

// mysqlNotMarked is the condition under which a MySQL capture trigger
// captures: the writing connection holds no library capture mark. OR
// evaluates left to right and stops at the first true operand.
const mysqlNotMarked = mysqlMarkHint + " IS NULL OR NOT EXISTS (SELECT 1 FROM " + CaptureMarksTable + " WHERE conn_id = CONNECTION_ID())"

// MySQL error numbers that MarkLibraryCapture handles.
const (
	mysqlDuplicateKey = 1062 // ER_DUP_ENTRY
	mysqlNoSuchTable  = 1146 // ER_NO_SUCH_TABLE
)

// CaptureTriggerParams describes the capture triggers of one master table.
type CaptureTriggerParams struct {
	// CQRSID is the model's CQRS ID: the outbox rows' and tombstones'.
	CQRSID string
	// Table and PKColumn are the master table and its primary key column.
	Table    string
	PKColumn string
	// Columns are the table's columns (TableColumns): MySQL's triggers
	// name each one, and both dialects need cqrs_updated's type.
	Columns []Column
	// NoProduce installs the bookkeeping only (revisions, cqrs_updated,
	// tombstones), with no outbox rows: the model's produce is off.
	NoProduce bool
}

// CaptureTriggerState is what a table's capture triggers are.
type CaptureTriggerState struct {
	// Installed is true when the table has cqrsync's capture triggers (all
	// of them).
	Installed bool
	// Partial is true when only some of them are there: install again.
	Partial bool
	// Current is true when they are exactly what InstallCaptureTriggers
	// installs now for the same params: false after the table's columns
	// or the model changed, or after an upgrade of cqrsync. Install again.
	Current bool
	// Triggers are the names of the capture triggers found.
	Triggers []string
}

// ErrNoCaptureTriggers is returned by the capture trigger functions on a
// dialect that has none (SQLite).
var ErrNoCaptureTriggers = errors.New("sqldialect: capture triggers are available on PostgreSQL and MySQL/MariaDB only")

func captureStandard(d Dialect, p *CaptureTriggerParams) (*standard, error) {
	s, ok := d.(*standard)
	if !ok || (s.name != "postgres" && s.name != "mysql") {
		return nil, fmt.Errorf("%w (dialect %s)", ErrNoCaptureTriggers, d.Name())
	}
	if p != nil {
		if p.CQRSID == "" || p.Table == "" || p.PKColumn == "" {
			return nil, errors.New("sqldialect: capture triggers: CQRSID, Table and PKColumn are required")
		}
		found := 0
		for _, c := range p.Columns {
			if c.Name == p.PKColumn || c.Name == "cqrs_revision" || c.Name == "cqrs_updated" {
				found++
			}
		}
		if found != 3 {
			return nil, fmt.Errorf("sqldialect: capture triggers on %s: the columns must include %s, cqrs_revision and cqrs_updated (pass TableColumns)", p.Table, p.PKColumn)
		}
	}
	return s, nil
}

// InstallCaptureTriggers installs (or replaces) the capture triggers of
// p.Table. On PostgreSQL run it in a transaction: it replaces the function
// and triggers atomically, and writers wait for it, so no write goes
// uncaptured. On MySQL, whose DDL commits at once, ex must be one
// connection (a transaction's): the table is locked for writing
// (LOCK TABLES) while the triggers are replaced, so that no write slips
// between them. Running it again is harmless.
func InstallCaptureTriggers(ctx context.Context, ex Executor, d Dialect, p *CaptureTriggerParams) error {
	s, err := captureStandard(d, p)
	if err != nil {
		return err
	}
	if s.name == "postgres" {
		return postgresInstallCapture(ctx, ex, s, p)
	}
	return mysqlInstallCapture(ctx, ex, s, p)
}

// UninstallCaptureTriggers removes the capture triggers of table (and on
// PostgreSQL their function) if there are any, and reports whether there
// were. Rows written afterwards are no longer captured.
func UninstallCaptureTriggers(ctx context.Context, ex Executor, d Dialect, table string) (bool, error) {
	s, err := captureStandard(d, nil)
	if err != nil {
		return false, err
	}
	st, err := CaptureTriggers(ctx, ex, d, nil, table)
	if err != nil || len(st.Triggers) == 0 {
		return false, err
	}
	if s.name == "postgres" {
		for _, name := range st.Triggers {
			if _, err := ex.Exec(ctx, fmt.Sprintf("DROP TRIGGER IF EXISTS %s ON %s", s.QuoteIdent(name), s.QuoteIdent(table))); err != nil {
				return false, fmt.Errorf("sqldialect: uninstall capture triggers of %s: %w", table, err)
			}
		}
		ts, _, _, err := postgresSchemas(ctx, ex, s, table)
		if err != nil {
			return false, err
		}
		if _, err := ex.Exec(ctx, "DROP FUNCTION IF EXISTS "+postgresFunctionName(s, ts, table)+"()"); err != nil {
			return false, fmt.Errorf("sqldialect: uninstall capture triggers of %s: %w", table, err)
		}
		return true, nil
	}
	for _, name := range st.Triggers {
		if _, err := ex.Exec(ctx, "DROP TRIGGER IF EXISTS "+s.QuoteIdent(name)); err != nil {
			return false, fmt.Errorf("sqldialect: uninstall capture triggers of %s: %w", table, err)
		}
	}
	return true, nil
}

// CaptureTriggers reports the capture triggers of table. With p, it also
// says whether they are current for p; without, Current is false.
func CaptureTriggers(ctx context.Context, ex Executor, d Dialect, p *CaptureTriggerParams, table string) (*CaptureTriggerState, error) {
	s, err := captureStandard(d, p)
	if err != nil {
		return nil, err
	}
	if s.name == "postgres" {
		return postgresCaptureState(ctx, ex, s, p, table)
	}
	return mysqlCaptureState(ctx, ex, s, p, table)
}

// MarkLibraryCapture tells the capture triggers of the tables that have
// them that the statements that follow in ex's transaction are a library
// capture's, which writes its own events: the triggers then leave them
// alone. On PostgreSQL the mark is a transaction-local setting, and the
// outbox row images that this transaction's triggers already wrote for the
// given keys of cqrsID (a plain UPDATE before Master.Update) are deleted
// with it, so one change makes one event. On MySQL the mark is a row of
// CaptureMarksTable written in ex's transaction, with a hint in a user
// variable so that the triggers look for it only then. Either way the mark
// lives in the transaction: a rollback (the caller's context cancelled
// mid-call, say) takes it away, and other sessions never see it. Call the
// returned done when the capture's statements are over: it clears the mark
// (even after an error), so that the caller's later plain writes in the
// same transaction are the triggers' again. done is never nil.
func MarkLibraryCapture(ctx context.Context, ex Executor, d Dialect, cqrsID string, keys []string) (done func(), err error) {
	nothing := func() {}
	switch d.Name() {
	case "postgres":
		// A data-modifying WITH runs whether or not it is read. The
		// transaction's row images start at the id its triggers noted (none
		// noted: nothing to scan); xmin is the 32-bit id of the (top-level)
		// transaction that inserted a row, txid_current() this one's, with
		// its epoch.
		_, err := ex.Exec(ctx, `WITH gone AS (DELETE FROM cqrs_outbox
			WHERE id >= NULLIF(current_setting('`+firstImageSetting+`', true), '')::bigint
			  AND xmin::text::bigint = txid_current() % 4294967296
			  AND cqrs_id = $1 AND substring(body for `+fmt.Sprint(len(RowImagePrefix))+`) = convert_to($2, 'UTF8')
			  AND convert_from(body, 'UTF8')::json->>'key' = ANY($3::text[]))
			SELECT set_config('`+CaptureMarker+`', 'library', true)`, cqrsID, RowImagePrefix, keys)
		if err != nil {
			return nothing, fmt.Errorf("sqldialect: mark the library capture: %w", err)
		}
		return func() {
			// The setting lasts until the transaction ends: clear it, or
			// the triggers would skip the caller's later plain writes in
			// the same transaction (and lose their events).
			_, _ = ex.Exec(context.WithoutCancel(ctx), `SELECT set_config('`+CaptureMarker+`', '', true)`)
		}, nil
	case "mysql":
		return mysqlMarkLibraryCapture(ctx, ex)
	}
	return nothing, nil
}

// mysqlMarkLibraryCapture is MarkLibraryCapture on MySQL: the hint, then
// the mark; done removes both.
func mysqlMarkLibraryCapture(ctx context.Context, ex Executor) (done func(), err error) {
	clearHint := func() { _, _ = ex.Exec(context.WithoutCancel(ctx), "SET "+mysqlMarkHint+" = NULL") }
	// The hint first: should the mark fail, a hint alone hides nothing.
	if _, err := ex.Exec(ctx, "SET "+mysqlMarkHint+" = 1"); err != nil {
		return func() {}, fmt.Errorf("sqldialect: mark the library capture: %w", err)
	}
	_, err = ex.Exec(ctx, "INSERT INTO "+CaptureMarksTable+" (conn_id) VALUES (CONNECTION_ID())")
	n, _ := dberr.MySQLNumber(err)
	switch {
	case err == nil, n == mysqlDuplicateKey:
		// A duplicate is a mark this transaction holds already (a capture
		// inside a capture's serializer, which runs after the capture's
		// writes: whichever done runs first may remove it), or one that
		// should not be there: its done removes it too.
	case n == mysqlNoSuchTable:
		// Without the table, the triggers are those of an older cqrsync
		// (the current ones name it): their mark is the variable alone.
		// Until capture install replaces them, it is what it was.
		return clearHint, nil
	default:
		clearHint()
		return func() {}, fmt.Errorf("sqldialect: mark the library capture: %w", err)
	}
	return func() {
		// When the transaction already ended (its context was cancelled,
		// and database/sql rolled it back), the DELETE fails and there is
		// nothing to remove: the rollback took the mark away.
		_, _ = ex.Exec(context.WithoutCancel(ctx), "DELETE FROM "+CaptureMarksTable+" WHERE conn_id = CONNECTION_ID()")
		clearHint()
	}, nil
}

// HasCaptureTriggers reports whether table has capture triggers, cheaply:
// the library asks it once per table to know whether to mark its captures.
func HasCaptureTriggers(ctx context.Context, ex Executor, d Dialect, table string) (bool, error) {
	if d.Name() != "postgres" && d.Name() != "mysql" {
		return false, nil
	}
	st, err := CaptureTriggers(ctx, ex, d, nil, table)
	if err != nil {
		return false, err
	}
	return len(st.Triggers) > 0, nil
}

// ---- PostgreSQL ----

// Trigger names on PostgreSQL (per table): BEFORE keeps the revision and
// cqrs_updated, AFTER writes the tombstone and the row image.
const (
	pgBeforeTrigger = "cqrs_capture_before"
	pgAfterTrigger  = "cqrs_capture_after"
)

// captureName makes an identifier of prefix and table within 63 bytes.
func captureName(prefix, table string) string {
	name := prefix + table
	if len(name) <= 63 {
		return name
	}
	sum := sha256.Sum256([]byte(table))
	keep := 63 - len(prefix) - 9
	for keep > 0 && !utf8.RuneStart(table[keep]) {
		keep-- // never cut a character in two
	}
	return prefix + table[:keep] + "_" + hex.EncodeToString(sum[:4])
}

// postgresSchemas finds the schemas of table and of cqrs_outbox and
// cqrs_tombstones, through the search_path.
func postgresSchemas(ctx context.Context, ex Executor, d *standard, table string) (tableSchema, outboxSchema, tombSchema string, err error) {
	rows, err := ex.Query(ctx, `SELECT
		(SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass($1)),
		(SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass('cqrs_outbox')),
		(SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass('cqrs_tombstones'))`,
		d.QuoteIdent(table))
	if err != nil {
		return "", "", "", fmt.Errorf("sqldialect: capture triggers of %s: %w", table, err)
	}
	defer rows.Close()
	var ts, os, tb *string
	if rows.Next() {
		if err := rows.Scan(&ts, &os, &tb); err != nil {
			return "", "", "", fmt.Errorf("sqldialect: capture triggers of %s: %w", table, err)
		}
	}
	if err := rows.Err(); err != nil {
		return "", "", "", fmt.Errorf("sqldialect: capture triggers of %s: %w", table, err)
	}
	if ts == nil {
		return "", "", "", fmt.Errorf("sqldialect: capture triggers of %s: %w", table, ErrNoTable)
	}
	if os == nil || tb == nil {
		return *ts, "", "", nil
	}
	return *ts, *os, *tb, nil
}

// postgresFunctionName is the quoted, schema-qualified name of table's
// trigger function, which lives in the table's schema.
func postgresFunctionName(d *standard, schema, table string) string {
	return d.QuoteIdent(schema) + "." + d.QuoteIdent(captureName("cqrs_capture_", table))
}

// postgresCaptureSQL renders the trigger function's body.
func postgresCaptureSQL(d *standard, p *CaptureTriggerParams, outbox, tombstones string) string {
	q := d.QuoteIdent
	pk := q(p.PKColumn)
	updated := "date_trunc('microseconds', statement_timestamp())"
	for _, c := range p.Columns {
		if c.Name == "cqrs_updated" && !strings.Contains(strings.ToLower(c.DeclaredType), "with time zone") {
			updated = "date_trunc('microseconds', statement_timestamp() AT TIME ZONE 'UTC')"
		}
	}
	id := quoteLiteral(p.CQRSID)
	image := func(op, keyRow, newRow, oldRow string) string {
		return fmt.Sprintf(`convert_to('{"cqrsync_trigger":1,"op":"%s","key":' || to_json((%s.%s)::text)::text || ',"at":' || us || ',"new":' || %s || ',"old":' || %s || '}', 'UTF8')`,
			op, keyRow, pk, newRow, oldRow)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `
DECLARE
	us bigint;
	rid bigint;
	img bytea;
BEGIN
	-- cqrsync capture trigger of %[1]s (cqrs_id %[2]s): do not edit; cqrsync capture install replaces it.
	IF current_setting('%[3]s', true) = 'library' THEN
		-- A library capture: it keeps the row and writes the event itself.
		IF TG_WHEN = 'BEFORE' THEN
			RETURN NEW;
		END IF;
		RETURN NULL;
	END IF;
	IF TG_WHEN = 'BEFORE' THEN
		IF TG_OP = 'INSERT' THEN
			NEW.cqrs_revision := COALESCE((SELECT ts.revision + 1 FROM %[4]s ts WHERE ts.cqrs_id = %[2]s AND ts.pk = (NEW.%[5]s)::text), 0);
		ELSE
			NEW.cqrs_revision := OLD.cqrs_revision + 1;
		END IF;
		NEW.cqrs_updated := %[6]s;
		RETURN NEW;
	END IF;
	us := (extract(epoch FROM statement_timestamp()) * 1000000)::bigint;
	IF TG_OP = 'DELETE' THEN
		INSERT INTO %[4]s (cqrs_id, pk, revision, updated_us, deleted_us)
		VALUES (%[2]s, (OLD.%[5]s)::text, OLD.cqrs_revision + 1, us, us) %[7]s;
`, p.Table, id, CaptureMarker, tombstones, pk, updated, d.tombstoneConflict)
	if p.NoProduce {
		b.WriteString("\tEND IF;\n\tRETURN NULL;\nEND;\n")
		return b.String()
	}
	// The first row image of a transaction leaves its id in a
	// transaction-local setting: a library capture later in the transaction
	// looks for the images to replace from there (MarkLibraryCapture).
	fmt.Fprintf(&b, `		img := %[3]s;
	ELSIF TG_OP = 'INSERT' THEN
		img := %[4]s;
	ELSE
		img := %[5]s;
	END IF;
	INSERT INTO %[1]s (cqrs_id, body, created_us) VALUES (%[2]s, img, us) RETURNING id INTO rid;
	IF COALESCE(current_setting('%[6]s', true), '') = '' THEN
		PERFORM set_config('%[6]s', rid::text, true);
	END IF;
	RETURN NULL;
END;
`, outbox, id, image("DELETE", "OLD", "'null'", "row_to_json(OLD)::text"),
		image("INSERT", "NEW", "row_to_json(NEW)::text", "'null'"),
		image("UPDATE", "NEW", "row_to_json(NEW)::text", "row_to_json(OLD)::text"), firstImageSetting)
	return b.String()
}

// firstImageSetting is the transaction-local setting that holds the id of
// the transaction's first row image (PostgreSQL).
const firstImageSetting = "cqrsync.first_image"

// quoteLiteral quotes s as a SQL string literal (standard: quotes doubled).
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func postgresInstallCapture(ctx context.Context, ex Executor, d *standard, p *CaptureTriggerParams) error {
	ts, os, tb, err := postgresSchemas(ctx, ex, d, p.Table)
	if err != nil {
		return err
	}
	if os == "" {
		return fmt.Errorf("sqldialect: capture triggers of %s: cqrs_outbox or cqrs_tombstones is not on the search_path: run cqrsync migrate first", p.Table)
	}
	fn := postgresFunctionName(d, ts, p.Table)
	body := postgresCaptureSQL(d, p, d.QuoteIdent(os)+".cqrs_outbox", d.QuoteIdent(tb)+".cqrs_tombstones")
	stmts := []string{
		// Writers of the table wait while the triggers are replaced, so
		// none commits between them uncaptured.
		"LOCK TABLE " + d.QuoteIdent(ts) + "." + d.QuoteIdent(p.Table) + " IN SHARE ROW EXCLUSIVE MODE",
		"CREATE OR REPLACE FUNCTION " + fn + "() RETURNS trigger LANGUAGE plpgsql AS $cqrsync$" + body + "$cqrsync$",
		// DROP and CREATE rather than CREATE OR REPLACE TRIGGER (PostgreSQL
		// 14+): inside the transaction, under the lock, no write sees the
		// table without them.
		fmt.Sprintf("DROP TRIGGER IF EXISTS %s ON %s.%s", pgBeforeTrigger, d.QuoteIdent(ts), d.QuoteIdent(p.Table)),
		fmt.Sprintf("DROP TRIGGER IF EXISTS %s ON %s.%s", pgAfterTrigger, d.QuoteIdent(ts), d.QuoteIdent(p.Table)),
		fmt.Sprintf("CREATE TRIGGER %s BEFORE INSERT OR UPDATE ON %s.%s FOR EACH ROW EXECUTE FUNCTION %s()",
			pgBeforeTrigger, d.QuoteIdent(ts), d.QuoteIdent(p.Table), fn),
		fmt.Sprintf("CREATE TRIGGER %s AFTER INSERT OR UPDATE OR DELETE ON %s.%s FOR EACH ROW EXECUTE FUNCTION %s()",
			pgAfterTrigger, d.QuoteIdent(ts), d.QuoteIdent(p.Table), fn),
	}
	for _, q := range stmts {
		if _, err := ex.Exec(ctx, q); err != nil {
			return fmt.Errorf("sqldialect: install capture triggers on %s: %w", p.Table, err)
		}
	}
	return nil
}

func postgresCaptureState(ctx context.Context, ex Executor, d *standard, p *CaptureTriggerParams, table string) (*CaptureTriggerState, error) {
	rows, err := ex.Query(ctx, `SELECT t.tgname, p.prosrc FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
		WHERE t.tgrelid = to_regclass($1) AND t.tgname IN ('`+pgBeforeTrigger+`', '`+pgAfterTrigger+`') ORDER BY t.tgname`, d.QuoteIdent(table))
	if err != nil {
		return nil, fmt.Errorf("sqldialect: capture triggers of %s: %w", table, err)
	}
	defer rows.Close()
	st := &CaptureTriggerState{}
	var sources []string
	for rows.Next() {
		var name, src string
		if err := rows.Scan(&name, &src); err != nil {
			return nil, fmt.Errorf("sqldialect: capture triggers of %s: %w", table, err)
		}
		st.Triggers = append(st.Triggers, name)
		sources = append(sources, src)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqldialect: capture triggers of %s: %w", table, err)
	}
	st.Installed = len(st.Triggers) == 2
	st.Partial = len(st.Triggers) == 1
	if st.Installed && p != nil {
		_, os, tb, err := postgresSchemas(ctx, ex, d, table)
		if err != nil {
			return nil, err
		}
		want := postgresCaptureSQL(d, p, d.QuoteIdent(os)+".cqrs_outbox", d.QuoteIdent(tb)+".cqrs_tombstones")
		st.Current = sources[0] == want && sources[1] == want
	}
	return st, nil
}

// ---- MySQL / MariaDB ----

// mysqlTriggers are the five trigger kinds MySQL needs (one event each),
// by name suffix.
var mysqlTriggers = []struct{ suffix, timing, event string }{
	{"_bi", "BEFORE", "INSERT"},
	{"_bu", "BEFORE", "UPDATE"},
	{"_ai", "AFTER", "INSERT"},
	{"_au", "AFTER", "UPDATE"},
	{"_ad", "AFTER", "DELETE"},
}

// mysqlTriggerName is a trigger's name: MySQL's trigger names are per
// database, so they carry the table's.
func mysqlTriggerName(table, suffix string) string {
	return captureName("cqrs_capture_", table+suffix)
}

// mysqlTextOf renders a column of row (NEW or OLD) as text for a row
// image: binary columns in hex, BIT as a number, the rest as text.
func mysqlTextOf(d *standard, row string, c Column) string {
	ref := row + "." + d.QuoteIdent(c.Name)
	t := strings.ToLower(c.DeclaredType)
	switch {
	case strings.Contains(t, "binary") || strings.Contains(t, "blob"):
		return "HEX(" + ref + ")"
	case strings.HasPrefix(t, "bit"):
		return "CAST(" + ref + " + 0 AS CHAR)"
	}
	return "CAST(" + ref + " AS CHAR CHARACTER SET utf8mb4)"
}

// mysqlImage renders the row image expression of op.
func mysqlImage(d *standard, p *CaptureTriggerParams, op string) string {
	obj := func(row string) string {
		parts := make([]string, 0, 2*len(p.Columns))
		for _, c := range p.Columns {
			parts = append(parts, quoteLiteral(c.Name), mysqlTextOf(d, row, c))
		}
		return "JSON_OBJECT(" + strings.Join(parts, ", ") + ")"
	}
	keyRow, newRow, oldRow := "NEW", obj("NEW"), "'null'"
	switch op {
	case "UPDATE":
		oldRow = obj("OLD")
	case "DELETE":
		keyRow, newRow, oldRow = "OLD", "'null'", obj("OLD")
	}
	return fmt.Sprintf(`CONCAT('{"cqrsync_trigger":1,"op":"%s","key":', JSON_QUOTE(%s), ',"at":', us, ',"new":', %s, ',"old":', %s, '}')`,
		op, mysqlTextOf(d, keyRow, Column{Name: p.PKColumn}), newRow, oldRow)
}

// mysqlCaptureSQL renders the body of each trigger, by name.
func mysqlCaptureSQL(d *standard, p *CaptureTriggerParams) map[string]string {
	q := d.QuoteIdent
	updated := "UTC_TIMESTAMP(6)"
	for _, c := range p.Columns {
		if c.Name == "cqrs_updated" && strings.HasPrefix(strings.ToLower(c.DeclaredType), "timestamp") {
			updated = "NOW(6)" // TIMESTAMP converts from the session's time zone
		}
	}
	id := quoteLiteral(p.CQRSID)
	us := "DECLARE us BIGINT DEFAULT CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED);"
	out := make(map[string]string, len(mysqlTriggers))
	for _, t := range mysqlTriggers {
		var body string
		switch t.suffix {
		case "_bi":
			body = fmt.Sprintf("SET NEW.cqrs_revision = COALESCE((SELECT ts.revision + 1 FROM cqrs_tombstones ts WHERE ts.cqrs_id = %s AND ts.pk = %s), 0); SET NEW.cqrs_updated = %s;",
				id, d.eng.castText("NEW."+q(p.PKColumn)), updated)
		case "_bu":
			body = fmt.Sprintf("SET NEW.cqrs_revision = OLD.cqrs_revision + 1; SET NEW.cqrs_updated = %s;", updated)
		case "_ai", "_au":
			if p.NoProduce {
				continue
			}
			body = fmt.Sprintf("INSERT INTO cqrs_outbox (cqrs_id, body, created_us) VALUES (%s, %s, us);", id, mysqlImage(d, p, t.event))
		case "_ad":
			body = fmt.Sprintf("INSERT INTO cqrs_tombstones (cqrs_id, pk, revision, updated_us, deleted_us) VALUES (%s, %s, OLD.cqrs_revision + 1, us, us) %s;",
				id, d.eng.castText("OLD."+q(p.PKColumn)), d.tombstoneConflict)
			if !p.NoProduce {
				body += fmt.Sprintf(" INSERT INTO cqrs_outbox (cqrs_id, body, created_us) VALUES (%s, %s, us);", id, mysqlImage(d, p, "DELETE"))
			}
		}
		decl := ""
		if t.timing == "AFTER" {
			decl = us + " "
		}
		out[mysqlTriggerName(p.Table, t.suffix)] = fmt.Sprintf("BEGIN %sIF %s THEN %s END IF; END", decl, mysqlNotMarked, body)
	}
	return out
}

func mysqlInstallCapture(ctx context.Context, ex Executor, d *standard, p *CaptureTriggerParams) error {
	bodies := mysqlCaptureSQL(d, p)
	// The triggers read the marks table: create it (as Migrate does) for
	// a database migrated by an older cqrsync. Before LOCK TABLES, which
	// allows no other table.
	if _, err := ex.Exec(ctx, mysqlMarksDDL); err != nil {
		return fmt.Errorf("sqldialect: install capture triggers on %s: create %s: %w", p.Table, CaptureMarksTable, err)
	}
	// DDL commits at once on MySQL: lock the table for writing while the
	// triggers are replaced, so no write falls between a DROP and a
	// CREATE. The triggers' own tables are locked too, as LOCK TABLES
	// wants every table the session will touch.
	lock := fmt.Sprintf("LOCK TABLES %s WRITE, cqrs_outbox WRITE, cqrs_tombstones WRITE", d.QuoteIdent(p.Table))
	if _, err := ex.Exec(ctx, lock); err != nil {
		return fmt.Errorf("sqldialect: install capture triggers on %s: lock the table: %w", p.Table, err)
	}
	defer func() { _, _ = ex.Exec(context.WithoutCancel(ctx), "UNLOCK TABLES") }()
	for _, t := range mysqlTriggers {
		name := mysqlTriggerName(p.Table, t.suffix)
		if _, err := ex.Exec(ctx, "DROP TRIGGER IF EXISTS "+d.QuoteIdent(name)); err != nil {
			return fmt.Errorf("sqldialect: install capture triggers on %s: %w", p.Table, err)
		}
		body, ok := bodies[name]
		if !ok {
			continue // NoProduce: no outbox trigger
		}
		q := fmt.Sprintf("CREATE TRIGGER %s %s %s ON %s FOR EACH ROW %s", d.QuoteIdent(name), t.timing, t.event, d.QuoteIdent(p.Table), body)
		if _, err := ex.Exec(ctx, q); err != nil {
			return fmt.Errorf("sqldialect: install capture triggers on %s: %w", p.Table, err)
		}
	}
	if _, err := ex.Exec(ctx, "UNLOCK TABLES"); err != nil {
		return fmt.Errorf("sqldialect: install capture triggers on %s: unlock: %w", p.Table, err)
	}
	return nil
}

func mysqlCaptureState(ctx context.Context, ex Executor, d *standard, p *CaptureTriggerParams, table string) (*CaptureTriggerState, error) {
	rows, err := ex.Query(ctx, `SELECT TRIGGER_NAME, ACTION_STATEMENT FROM information_schema.TRIGGERS
		WHERE TRIGGER_SCHEMA = DATABASE() AND EVENT_OBJECT_TABLE = ? ORDER BY TRIGGER_NAME`, table)
	if err != nil {
		return nil, fmt.Errorf("sqldialect: capture triggers of %s: %w", table, err)
	}
	defer rows.Close()
	st := &CaptureTriggerState{}
	found := map[string]string{}
	for rows.Next() {
		var name, body string
		if err := rows.Scan(&name, &body); err != nil {
			return nil, fmt.Errorf("sqldialect: capture triggers of %s: %w", table, err)
		}
		for _, t := range mysqlTriggers {
			if name == mysqlTriggerName(table, t.suffix) {
				st.Triggers = append(st.Triggers, name)
				found[name] = body
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqldialect: capture triggers of %s: %w", table, err)
	}
	// Bookkeeping and the delete trigger are always there; the outbox
	// triggers of INSERT and UPDATE only when the model produces.
	core := 0
	for _, sfx := range []string{"_bi", "_bu", "_ad"} {
		if _, ok := found[mysqlTriggerName(table, sfx)]; ok {
			core++
		}
	}
	st.Installed = core == 3
	st.Partial = len(st.Triggers) > 0 && !st.Installed
	if st.Installed && p != nil {
		want := mysqlCaptureSQL(d, p)
		st.Current = len(want) == len(found)
		for name, body := range want {
			if found[name] != body {
				st.Current = false
			}
		}
	}
	return st, nil
}
