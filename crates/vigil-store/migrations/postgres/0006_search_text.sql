-- Search through control characters. Keep in step with ../sqlite/0006_search_text.sql.
--
-- `q` searches a text with each run of control characters replaced by one space. It is
-- stored only for the texts that have a control character (or U+E000); other rows are
-- searched on the text itself (COALESCE), so ordinary events store nothing more.
ALTER TABLE alerts ADD COLUMN title_search TEXT;
ALTER TABLE alerts ADD COLUMN description_search TEXT;
ALTER TABLE events ADD COLUMN message_search TEXT;

-- PostgreSQL text and jsonb cannot hold U+0000, so from now on the store escapes it in
-- attacker-supplied text: U+E000 -> U+E000 U+E000, U+0000 -> U+E000 '0' (see the store's
-- text.rs). Rows written before cannot hold U+0000, but a U+E000 in them must be doubled
-- so it reads back as itself. (Each jsonb condition reads every row's document once.)
DO $$
DECLARE
    esc text := chr(57344);
    t text;
    c text;
BEGIN
    FOR t, c IN SELECT * FROM (VALUES ('alerts', 'title'), ('alerts', 'description'),
            ('alerts', 'event_type'), ('alerts', 'agent_id'), ('alerts', 'dedup_key'),
            ('events', 'host'), ('events', 'dataset'), ('events', 'message')) AS v LOOP
        EXECUTE format('UPDATE %I SET %I = replace(%I, $1, $1 || $1) WHERE strpos(%I, $1) > 0',
            t, c, c, c) USING esc;
    END LOOP;
    FOR t, c IN SELECT * FROM (VALUES ('alerts', 'metadata'), ('alerts', 'observables'),
            ('events', 'doc')) AS v LOOP
        EXECUTE format('UPDATE %I SET %I = replace(%I::text, $1, $1 || $1)::jsonb '
            'WHERE strpos(%I::text, $1) > 0', t, c, c, c) USING esc;
    END LOOP;
END $$;

-- Existing rows' search texts are filled in by the store right after migrating (the same
-- Rust code that writes new ones); it removes this marker when done.
CREATE TABLE pending_backfills (name TEXT PRIMARY KEY);
INSERT INTO pending_backfills (name) VALUES ('0006_search_text');
