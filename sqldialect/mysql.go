package sqldialect

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// MySQL returns the dialect for MariaDB 10.6 and MySQL 8.0.16 or newer, with
// InnoDB tables, as provided by github.com/go-sql-driver/mysql.
//
// Open the database with a DSN that keeps the driver's defaults for
// clientFoundRows (false: Upsert tells an applied row from a dropped one by
// the rows the server reports changed) and loc (UTC), and add
// parseTime=true so DATETIME columns scan into time.Time. When replica
// tables use TIMESTAMP columns, also set the session time zone to UTC
// (time_zone=%27%2B00%3A00%27), since the server converts TIMESTAMPs to it.
//
// MySQL has no UPDATE … RETURNING: ClaimOutbox marks the rows it leases
// with a random token and reads them back by it, so it needs no
// transaction; call it on a pool, since under REPEATABLE READ its locks
// last until the transaction ends. cqrsync's own tables use utf8mb4_bin, so
// keys compare byte for byte, whatever the server's default collation.
//
// Upsert and UpsertBatch write replica rows in strict mode on MariaDB
// (STRICT_TRANS_TABLES is added to the session's sql_mode for those
// statements only), so a value that does not fit its column fails with
// an error naming the column rather than being cut. On MySQL they use the
// session's sql_mode: keep it strict (MySQL's default). They write tables
// with unique keys besides the primary key by primary key, not with ON
// DUPLICATE KEY UPDATE, which fires for a conflict on any unique key: see
// UpsertParams.UniqueKeys.
func MySQL() Dialect {
	return &standard{
		name:              "mysql",
		quoteChar:         '`',
		eng:               mysqlEngine{},
		tombstoneConflict: mysqlTombstoneConflict,
		fromDual:          " FROM DUAL",
		forUpdate:         "FOR UPDATE",
		writePrefix:       mysqlStrictWrite,
	}
}

// mysqlEngine is MySQL's and MariaDB's engine.
type mysqlEngine struct{ commonEngine }

func (mysqlEngine) placeholder(int) string { return "?" }

// conflictsOnAnyKey is true: ON DUPLICATE KEY UPDATE fires for a conflict
// on any unique key, not only the primary key.
func (mysqlEngine) conflictsOnAnyKey() bool { return true }

// castText converts expr to text that compares with the tombstones' pk
// column byte for byte. The explicit character set and collation make the
// comparison independent of the connection's (a plain CAST(… AS CHAR)
// takes them from the connection, and only MySQL's "_bin wins" rule keeps
// it exact).
func (mysqlEngine) castText(expr string) string {
	return "CAST(" + expr + " AS CHAR CHARACTER SET utf8mb4) COLLATE utf8mb4_bin"
}

// mysqlColumnsSQL describes a table of the current database. MariaDB reports
// the default of a nullable column without one as the bare word NULL (string
// defaults are quoted there, so 'NULL' the text is "'NULL'"); MySQL reports
// SQL NULL. Generated columns and auto-increment keys fill themselves in,
// which counts as a default. Only the first column of the primary key is
// flagged, as Column.PrimaryKey says. A column is Unique when it belongs
// to a unique index other than the primary key (NON_UNIQUE = 0): Upsert
// and UpsertBatch must not write such tables with ON DUPLICATE KEY UPDATE
// (see UpsertParams.UniqueKeys).
const mysqlColumnsSQL = `SELECT c.COLUMN_NAME, c.COLUMN_TYPE, c.IS_NULLABLE = 'YES',
	(c.COLUMN_DEFAULT IS NOT NULL AND c.COLUMN_DEFAULT <> 'NULL')
		OR c.EXTRA LIKE '%auto_increment%' OR c.EXTRA LIKE '%GENERATED%',
	COALESCE(c.COLUMN_NAME = (SELECT s.COLUMN_NAME FROM information_schema.STATISTICS s
		WHERE s.TABLE_SCHEMA = c.TABLE_SCHEMA AND s.TABLE_NAME = c.TABLE_NAME
		AND s.INDEX_NAME = 'PRIMARY' AND s.SEQ_IN_INDEX = 1), 0),
	EXISTS (SELECT 1 FROM information_schema.STATISTICS u
		WHERE u.TABLE_SCHEMA = c.TABLE_SCHEMA AND u.TABLE_NAME = c.TABLE_NAME
		AND u.COLUMN_NAME = c.COLUMN_NAME AND u.NON_UNIQUE = 0 AND u.INDEX_NAME <> 'PRIMARY')
FROM information_schema.COLUMNS c
WHERE c.TABLE_SCHEMA = DATABASE() AND c.TABLE_NAME = ?
ORDER BY c.ORDINAL_POSITION`

func (mysqlEngine) columns(ctx context.Context, ex Executor, _ *standard, table string) ([]Column, error) {
	rows, err := ex.Query(ctx, mysqlColumnsSQL, table)
	if err != nil {
		return nil, fmt.Errorf("sqldialect: columns of %s: %w", table, err)
	}
	defer rows.Close()
	var cols []Column
	longText := false
	for rows.Next() {
		var c Column
		if err := rows.Scan(&c.Name, &c.DeclaredType, &c.Nullable, &c.HasDefault, &c.PrimaryKey, &c.Unique); err != nil {
			return nil, fmt.Errorf("sqldialect: columns of %s: %w", table, err)
		}
		c.Nullable = c.Nullable && !c.PrimaryKey
		longText = longText || c.DeclaredType == "longtext"
		cols = append(cols, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqldialect: columns of %s: %w", table, err)
	}
	rows.Close()
	if longText {
		jsonCols, err := mariadbJSONColumns(ctx, ex, table)
		if err != nil {
			return nil, fmt.Errorf("sqldialect: columns of %s: %w", table, err)
		}
		for i, c := range cols {
			if c.DeclaredType == "longtext" && jsonCols[c.Name] {
				cols[i].DeclaredType = "json"
			}
		}
	}
	return cols, nil
}

// mariadbJSONColumns finds the JSON columns of a MariaDB table. MariaDB's
// JSON is an alias of LONGTEXT that adds the check json_valid(`col`), and
// information_schema shows only "longtext"; the check is what tells them
// apart. MySQL has a real JSON type, and its CHECK_CONSTRAINTS view has no
// TABLE_NAME column: the query reads the columns by name, and without
// TABLE_NAME (MySQL) it reports no JSON columns, which is right there.
func mariadbJSONColumns(ctx context.Context, ex Executor, table string) (map[string]bool, error) {
	rows, err := ex.Query(ctx, "SELECT * FROM information_schema.CHECK_CONSTRAINTS "+
		"WHERE CONSTRAINT_SCHEMA = DATABASE() AND CHECK_CLAUSE LIKE 'json\\_valid(%'")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	names, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	tableIdx, clauseIdx := -1, -1
	for i, n := range names {
		switch strings.ToUpper(n) {
		case "TABLE_NAME":
			tableIdx = i
		case "CHECK_CLAUSE":
			clauseIdx = i
		}
	}
	vals := make([]any, len(names))
	ptrs := make([]any, len(names))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	out := map[string]bool{}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		if tableIdx < 0 || clauseIdx < 0 || mysqlText(vals[tableIdx]) != table {
			continue
		}
		clause := mysqlText(vals[clauseIdx])
		if col, ok := strings.CutPrefix(clause, "json_valid(`"); ok {
			if col, ok = strings.CutSuffix(col, "`)"); ok && !strings.Contains(strings.ReplaceAll(col, "``", ""), "`") {
				out[strings.ReplaceAll(col, "``", "`")] = true
			}
		}
	}
	return out, rows.Err()
}

func mysqlText(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case []byte:
		return string(v)
	}
	return ""
}

// claimOutbox leases outbox rows in three statements, none of which
// waits for a capturing transaction:
//
//  1. A plain SELECT (a consistent, non-locking read) lists the lowest free
//     committed IDs. Rows inserted by transactions still open are invisible
//     to it, so a long master transaction does not stall the relays (a
//     locking UPDATE … ORDER BY id LIMIT n would wait on their row locks:
//     MariaDB has no SKIP LOCKED for UPDATE).
//  2. An UPDATE by primary key (forced: on a small or new table the
//     optimizer would scan, and under REPEATABLE READ an UPDATE locks every
//     row it scans, uncommitted inserts included) leases exactly those rows
//     with a random
//     token, re-checking lease_us: if another relay leased one meanwhile,
//     this UPDATE waits for that relay's single-statement update (a moment),
//     then sees the new lease and skips the row. Two relays can never both
//     lease a row.
//  3. A SELECT by token reads back what this claim got.
func (mysqlEngine) claimOutbox(ctx context.Context, ex Executor, d *standard, p *ClaimOutboxParams) ([]OutboxRow, error) {
	if p.Limit <= 0 {
		return nil, nil
	}
	rows, err := ex.Query(ctx, "SELECT id FROM cqrs_outbox WHERE lease_us < ? ORDER BY id LIMIT ?", micros(p.Now), p.Limit)
	if err != nil {
		return nil, err
	}
	var ids []any
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, err
		}
		ids = append(ids, id)
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, nil
	}
	token := make([]byte, 16)
	_, _ = rand.Read(token) // crypto/rand.Read never fails (it panics instead)
	args := append([]any{micros(p.LeaseUntil), token, micros(p.Now)}, ids...)
	n, err := ex.Exec(ctx, "UPDATE cqrs_outbox FORCE INDEX (PRIMARY) SET lease_us = ?, lease_token = ? WHERE lease_us < ? AND id IN ("+d.params(4, len(ids))+")", args...)
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, nil
	}
	rows, err = ex.Query(ctx, "SELECT "+outboxColumns+" FROM cqrs_outbox WHERE lease_token = ? ORDER BY id", token)
	if err != nil {
		return nil, err
	}
	return scanOutbox(rows)
}

// upsertConflict is the MySQL form of Upsert's conflict clause:
// ON DUPLICATE KEY UPDATE, each column guarded by IF(stored revision <
// incoming revision, new, old), <= for GuardNotOlder, and by the primary
// key condition below alone for GuardAny.
//
// MySQL applies the assignments left to right, and a later one sees the
// columns the earlier ones changed. The guard reads cqrs_revision, so
// cqrs_revision is assigned last: every guard, its own included, still
// compares the stored revision.
//
// The affected-rows count tells the caller what happened: 1 for an insert,
// 2 for an update that changed the row (Upsert turns it into 1), 0 when
// every IF kept the old value. A guarded update always changes the row,
// since its revision is higher, so "same values, higher revision" is 1 and
// a duplicate or stale event is 0. (With the driver's clientFoundRows=true
// a kept row would count 1: do not set it.) A GuardNotOlder or GuardAny
// write at the stored revision of a row equal to the stored one also counts
// 0, as does a GuardNotOlder write kept out by a newer row; noChange sorts
// them out.
//
// VALUES(col) is the incoming value; MySQL 8.0.20 deprecates it in favour
// of a row alias that MariaDB does not support, and both still accept it.
//
// The clause also fires for a conflict on a unique key other than the
// primary key, on the row that holds the incoming value of that key: the
// guard therefore also requires the stored primary key to be the incoming
// one, so that another key's row is never written (the row counts 0, and
// noChange reports ErrUnknownUniqueKey). Tables with such keys are written
// without this clause, to fail with the server's duplicate-key error (see
// UpsertParams.UniqueKeys); the condition covers a table whose unique key
// was added after its columns were read.
func (mysqlEngine) upsertConflict(d *standard, table, pk string, cols []string, g Guard) string {
	const revName = "cqrs_revision"
	rev := d.QuoteIdent(revName)
	samePK := d.QuoteIdent(table) + "." + d.QuoteIdent(pk) + " = VALUES(" + d.QuoteIdent(pk) + ")"
	guard := samePK
	if cond := revisionCondition(g, d.QuoteIdent(table)+"."+rev, "VALUES("+rev+")"); cond != "" {
		guard = cond + " AND " + samePK
	}
	ordered := make([]string, 0, len(cols))
	for _, c := range cols {
		if c != pk && c != revName {
			ordered = append(ordered, c)
		}
	}
	if slices.Contains(cols, revName) {
		ordered = append(ordered, revName)
	}
	var b strings.Builder
	b.WriteString("ON DUPLICATE KEY UPDATE ")
	for i, c := range ordered {
		if i > 0 {
			b.WriteString(", ")
		}
		// The stored column is qualified with the table: in INSERT ...
		// SELECT the source rows have columns of the same names.
		q, stored := d.QuoteIdent(c), d.QuoteIdent(table)+"."+d.QuoteIdent(c)
		fmt.Fprintf(&b, "%s = IF(%s, VALUES(%s), %s)", stored, guard, q, stored)
	}
	return b.String()
}

// noChange tells apart the reasons an Upsert changed no row on MySQL,
// which counts only rows it changed: the tombstone guard kept the row out
// (0); no row has the key, so the conflict clause fired for another unique
// key (ErrUnknownUniqueKey: the write was not told of that key, see
// upsertConflict; by key, see upsertByKey, a missing row is inserted or
// kept out by its tombstone); the stored row is newer (0, stale:
// GuardNotOlder only, since GuardAny would have changed it) or not older
// (0, GuardNewer); or the stored row at the incoming revision already
// equals the incoming one (1, written, as the other dialects report it; a
// SYNC of unchanged data is the common case). It re-asks the INSERT's
// questions with locking reads, so it sees the latest committed tombstone
// and row as the INSERT did, not an older snapshot of the caller's
// transaction.
func (mysqlEngine) noChange(ctx context.Context, ex Executor, d *standard, p *UpsertParams) (int64, error) {
	pkAt := slices.Index(p.Columns, p.PKColumn)
	if pkAt < 0 {
		return 0, fmt.Errorf("sqldialect: upsert %s: the columns %v lack the primary key %q: add it", p.Table, p.Columns, p.PKColumn)
	}
	n, err := mysqlCount(ctx, ex, "SELECT COUNT(*) FROM cqrs_tombstones WHERE cqrs_id = ? AND pk = ? AND revision >= ? AND updated_us >= ? LOCK IN SHARE MODE",
		p.CQRSID, p.Key, p.Revision, micros(p.Updated))
	if err != nil || n > 0 {
		return 0, guardCheckErr(p.Table, err)
	}
	rows, err := ex.Query(ctx, fmt.Sprintf("SELECT %s FROM %s WHERE %s = ? LOCK IN SHARE MODE",
		d.QuoteIdent("cqrs_revision"), d.QuoteIdent(p.Table), d.QuoteIdent(p.PKColumn)), p.Values[pkAt])
	if err != nil {
		return 0, guardCheckErr(p.Table, err)
	}
	defer rows.Close()
	var stored int64
	found := rows.Next()
	if found {
		err = rows.Scan(&stored)
	}
	if err = errors.Join(err, rows.Err(), rows.Close()); err != nil {
		return 0, guardCheckErr(p.Table, err)
	}
	switch {
	case !found && !p.UniqueKeys:
		return 0, fmt.Errorf("sqldialect: upsert %s: %w", p.Table, ErrUnknownUniqueKey)
	case !found, p.Guard == GuardNewer, stored > p.Revision:
		return 0, nil
	}
	return 1, nil
}

// guardCheckErr wraps an error of noChange's reads; nil stays nil.
func guardCheckErr(table string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("sqldialect: upsert %s: guard check: %w", table, err)
}

// mysqlCount runs a SELECT COUNT(*).
func mysqlCount(ctx context.Context, ex Executor, q string, args ...any) (int64, error) {
	rows, err := ex.Query(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	var n int64
	if rows.Next() {
		if err := rows.Scan(&n); err != nil {
			return 0, err
		}
	}
	return n, rows.Err()
}

// mysqlTombstoneConflict keeps the newest delete of a key, as
// onConflictTombstone does: the later updated_us, then the higher revision.
//
// The assignments run left to right and see each other's results, so they
// are ordered for the comparison to read stored values: deleted_us and then
// revision are guarded by the full rule while updated_us and revision are
// still the stored ones; updated_us comes last and needs no guard, because
// under the rule the kept updated_us is always the greater of the two.
const mysqlTombstoneConflict = `ON DUPLICATE KEY UPDATE
	deleted_us = IF(VALUES(updated_us) > updated_us OR (VALUES(updated_us) = updated_us AND VALUES(revision) > revision),
		VALUES(deleted_us), deleted_us),
	revision = IF(VALUES(updated_us) > updated_us OR (VALUES(updated_us) = updated_us AND VALUES(revision) > revision),
		VALUES(revision), revision),
	updated_us = GREATEST(updated_us, VALUES(updated_us))`

// mysqlStrictWrite prefixes the statements that write replica rows: MariaDB
// runs each with STRICT_TRANS_TABLES added to the session's sql_mode, so a
// value that does not fit its column (too long, out of range, not valid in
// the column's character set) fails the statement with an error naming the
// column, as in PostgreSQL, instead of being cut or replaced with a
// warning nobody reads. A replica must equal its master, and a failed event
// is retried and then dead-lettered with the reason. The session's own
// mode is otherwise kept. MySQL reads the /*M! … */ comment as a comment:
// there the session's mode applies (strict by default since 5.7).
const mysqlStrictWrite = "/*M! SET STATEMENT sql_mode = CONCAT(@@sql_mode, ',STRICT_TRANS_TABLES') FOR */ "

// mysqlLengthPrefixed reports whether a declared column type is one of the
// TEXT and BLOB types, which store their length in a prefix of 1 to 4
// bytes.
func mysqlLengthPrefixed(typ string) bool {
	switch typ {
	case "tinytext", "text", "mediumtext", "longtext", "tinyblob", "blob", "mediumblob", "longblob":
		return true
	}
	return false
}

// storeValue makes UpsertBatch store a TEXT or BLOB column from an
// expression rather than from the bare column of its derived table.
// MariaDB (10.11) copies a derived table's column into a TEXT or BLOB
// column field to field, without checking the length: a value longer than
// the column is cut to its length modulo the type's limit plus one (256
// bytes for TINYTEXT, 65,536 for TEXT: 70,000 bytes become 4,464), with no
// error and no warning, whatever the sql_mode. An expression is stored
// like a parameter, checked against the column's size.
func (mysqlEngine) storeValue(expr, typ string) string {
	if mysqlLengthPrefixed(typ) {
		return "CONCAT(" + expr + ")"
	}
	return expr
}

// mysqlBinary reports whether a declared column type holds byte strings.
func mysqlBinary(typ string) bool {
	return strings.HasPrefix(typ, "binary") || strings.HasPrefix(typ, "varbinary") || strings.HasSuffix(typ, "blob")
}

// valuesSource builds the rows as a UNION ALL of SELECTs (MariaDB has
// no VALUES table constructor with column names). A placeholder for a
// binary column is cast to BINARY: the derived table would otherwise type
// it as text in the connection's character set, and bytes that are not
// valid there would be stored as '?'.
func (mysqlEngine) valuesSource(d *standard, n int, names, types []string, first int) string {
	var b strings.Builder
	b.WriteByte('(')
	for r := range n {
		if r > 0 {
			b.WriteString(" UNION ALL ")
		}
		b.WriteString("SELECT ")
		for c, name := range names {
			if c > 0 {
				b.WriteString(", ")
			}
			if mysqlBinary(types[c]) {
				b.WriteString("CAST(" + d.eng.placeholder(first+r*len(names)+c) + " AS BINARY)")
			} else {
				b.WriteString(d.eng.placeholder(first + r*len(names) + c))
			}
			if r == 0 {
				b.WriteString(" AS " + d.QuoteIdent(name))
			}
		}
	}
	b.WriteString(") AS v")
	return b.String()
}

// outboxByIDs deletes or releases outbox rows by primary-key lookups
// only. A plain "WHERE id IN (...)" may be run as a scan (the outbox is
// small and its statistics say so), and under REPEATABLE READ a scan locks
// every row it reads, so the relay would wait for every capturing
// transaction still open. The ids drive the join, one eq_ref lookup each.
func (mysqlEngine) outboxByIDs(d *standard, op, _ string, n int) string {
	var keys strings.Builder
	for i := range n {
		if i > 0 {
			keys.WriteString(" UNION ALL ")
		}
		keys.WriteString("SELECT ? AS id")
	}
	if op == "delete" {
		return "DELETE o FROM (" + keys.String() + ") k STRAIGHT_JOIN cqrs_outbox o FORCE INDEX (PRIMARY) ON o.id = k.id"
	}
	return "UPDATE (" + keys.String() + ") k STRAIGHT_JOIN cqrs_outbox o FORCE INDEX (PRIMARY) ON o.id = k.id SET o.lease_us = 0"
}
