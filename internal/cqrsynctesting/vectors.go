package cqrsynctesting

// VectorTables are the master tables behind the django-cqrs vectors
// (testdata/interop/README.md §12), rebuilt on SQLite, by CQRS ID.
var VectorTables = map[string]string{
	"djpeer_basic": `CREATE TABLE djpeer_basic (
		id INTEGER PRIMARY KEY, cqrs_revision INTEGER NOT NULL DEFAULT 0, cqrs_updated DATETIME,
		int_field INTEGER NOT NULL DEFAULT 0, char_field VARCHAR(200) NOT NULL DEFAULT '',
		date_field DATE, datetime_field DATETIME, bool_field BOOLEAN NOT NULL DEFAULT 0,
		nullable_int INTEGER, nullable_char VARCHAR(200), uuid_field UUID,
		decimal_field NUMERIC(14,4), float_field DOUBLE PRECISION, json_field JSON)`,
	"djpeer_mapped": `CREATE TABLE djpeer_mapped (
		id INTEGER PRIMARY KEY, cqrs_revision INTEGER NOT NULL DEFAULT 0, cqrs_updated DATETIME,
		name VARCHAR(200) NOT NULL DEFAULT '', amount INTEGER NOT NULL DEFAULT 0, secret VARCHAR(200) NOT NULL DEFAULT 's3cret')`,
	"djpeer_meta": `CREATE TABLE djpeer_meta (
		id INTEGER PRIMARY KEY, cqrs_revision INTEGER NOT NULL DEFAULT 0, cqrs_updated DATETIME,
		name VARCHAR(200) NOT NULL DEFAULT '')`,
	"djpeer_filtered": `CREATE TABLE djpeer_filtered (
		id INTEGER PRIMARY KEY, cqrs_revision INTEGER NOT NULL DEFAULT 0, cqrs_updated DATETIME,
		name VARCHAR(200) NOT NULL DEFAULT '', is_active BOOLEAN NOT NULL DEFAULT 1)`,
}

// ReplicaBasicDDL is a SQLite replica table of djpeer_basic, the vectors'
// main model, with a CHECK that refuses int_field 666 (a row a replica
// rejects).
const ReplicaBasicDDL = `CREATE TABLE djpeer_basic (
	id INTEGER PRIMARY KEY, cqrs_revision INTEGER NOT NULL, cqrs_updated DATETIME NOT NULL,
	int_field INTEGER NOT NULL, char_field VARCHAR(200) NOT NULL,
	date_field DATE, datetime_field DATETIME, bool_field BOOLEAN NOT NULL,
	nullable_int INTEGER, nullable_char VARCHAR(200), uuid_field UUID,
	decimal_field NUMERIC(14,4), float_field DOUBLE PRECISION, json_field JSON,
	CHECK (int_field <> 666))`
