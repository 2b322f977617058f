
-- Version 3: the marks of library captures on tables with capture triggers
-- (cqrsync capture install). A library capture (Master.Insert, UpdateRow,
-- Create, Update, Delete) inserts its connection's id here inside the
-- writer's transaction and deletes it when its statements are done; the
-- triggers leave alone the writes of a connection that has a row here
-- (they look only where the capture's hint, the user variable
-- @cqrsync_capture, is set). An uncommitted row is seen by its own
-- transaction only, and a rollback removes it, so no mark outlives the
-- capture's transaction. capture install creates this table too.
CREATE TABLE IF NOT EXISTS cqrs_capture_marks (
    conn_id     BIGINT UNSIGNED NOT NULL,            -- CONNECTION_ID() of the capturing session
    PRIMARY KEY (conn_id)
) ENGINE=InnoDB;
