-- Search through control characters. Keep in step with ../postgres/0006_search_text.sql.
--
-- `q` searches a text with each run of control characters replaced by one space (SQLite's
-- LIKE stops at a NUL, so a title "x<NUL>mimikatz" was not found by "mimikatz"). It is
-- stored only for the texts that have a control character (or U+E000); other rows are
-- searched on the text itself (COALESCE), so ordinary events store nothing more.
ALTER TABLE alerts ADD COLUMN title_search TEXT;
ALTER TABLE alerts ADD COLUMN description_search TEXT;
ALTER TABLE events ADD COLUMN message_search TEXT;

-- Existing rows are filled in by the store right after migrating (in Rust: SQLite's
-- string functions stop at or ignore a NUL); it removes this marker when done.
CREATE TABLE pending_backfills (name TEXT PRIMARY KEY);
INSERT INTO pending_backfills (name) VALUES ('0006_search_text');
