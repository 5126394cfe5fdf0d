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
UPDATE alerts SET title = replace(title, chr(57344), chr(57344) || chr(57344))
    WHERE strpos(title, chr(57344)) > 0;
UPDATE alerts SET description = replace(description, chr(57344), chr(57344) || chr(57344))
    WHERE strpos(description, chr(57344)) > 0;
UPDATE alerts SET event_type = replace(event_type, chr(57344), chr(57344) || chr(57344))
    WHERE strpos(event_type, chr(57344)) > 0;
UPDATE alerts SET agent_id = replace(agent_id, chr(57344), chr(57344) || chr(57344))
    WHERE strpos(agent_id, chr(57344)) > 0;
UPDATE alerts SET dedup_key = replace(dedup_key, chr(57344), chr(57344) || chr(57344))
    WHERE strpos(dedup_key, chr(57344)) > 0;
UPDATE alerts SET metadata = replace(metadata::text, chr(57344), chr(57344) || chr(57344))::jsonb
    WHERE strpos(metadata::text, chr(57344)) > 0;
UPDATE alerts SET observables = replace(observables::text, chr(57344), chr(57344) || chr(57344))::jsonb
    WHERE strpos(observables::text, chr(57344)) > 0;
UPDATE events SET host = replace(host, chr(57344), chr(57344) || chr(57344))
    WHERE strpos(host, chr(57344)) > 0;
UPDATE events SET dataset = replace(dataset, chr(57344), chr(57344) || chr(57344))
    WHERE strpos(dataset, chr(57344)) > 0;
UPDATE events SET message = replace(message, chr(57344), chr(57344) || chr(57344))
    WHERE strpos(message, chr(57344)) > 0;
UPDATE events SET doc = replace(doc::text, chr(57344), chr(57344) || chr(57344))::jsonb
    WHERE strpos(doc::text, chr(57344)) > 0;

-- Existing rows' search texts are filled in by the store right after migrating (the same
-- Rust code that writes new ones); it removes this marker when done.
CREATE TABLE pending_backfills (name TEXT PRIMARY KEY);
INSERT INTO pending_backfills (name) VALUES ('0006_search_text');
