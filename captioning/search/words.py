"""The caption word index (PostgreSQL only, migration 0016): which photos hold which word, newest photo first.

`captioning_caption_word` has a row (word, photo) for every word of a photo's current caption and of its done
translations, lower-cased and split at white space and ASCII punctuation but the underscore: a query word (letters,
digits and underscores, `text.query_words`) that a text holds lies inside one of its words, whatever the database's
locale calls a letter (PostgreSQL's own non-word class splits "½cup", and in a C locale "piéton"). The primary key
(word, photo_id) hands a word's photos newest first, so caption search reads the newest few of each word and stops,
however many captions hold it.
`captioning_caption_vocabulary` lists every word ever indexed, so a query word finds the indexed words it is a part
of ("dog" finds "dogs", "hotdog") from that short list rather than from every caption. Triggers on the captions and
translations keep both current, whoever writes them; a bulk load may turn them off and call `caption_words_fill`.
"""

from django.db import connection

WORDS_TABLE = "captioning_caption_word"
VOCABULARY_TABLE = "captioning_caption_vocabulary"
TRIGGERS = {
    "captioning_caption": "captioning_caption_words_sync",
    "captioning_translation": "captioning_translation_words_sync",
}

# The words of the given photos' current captions and done translations; `{photos}` is a condition on c.photo_id.
# The separators: white space and ASCII's punctuation ranges, the underscore (between ^ and `) left out.
_SEPARATORS = r"[\s!-/:-@[-^`{-~]+"
_WORDS_OF = r"""
SELECT DISTINCT word, photo_id FROM (
    SELECT regexp_split_to_table(lower(c.text), '{separators}') AS word, c.photo_id
    FROM captioning_caption c WHERE c.is_current AND {photos}
    UNION ALL
    SELECT regexp_split_to_table(lower(t.text), '{separators}'), c.photo_id
    FROM captioning_translation t JOIN captioning_caption c ON c.id = t.caption_id
    WHERE c.is_current AND t.status = 'done' AND {photos}
) AS words WHERE word <> ''
"""

CREATE_SQL = rf"""
CREATE TABLE IF NOT EXISTS {WORDS_TABLE} (
    word text NOT NULL,
    photo_id bigint NOT NULL,
    PRIMARY KEY (word, photo_id)
);
CREATE INDEX IF NOT EXISTS {WORDS_TABLE}_photo ON {WORDS_TABLE} (photo_id);
CREATE TABLE IF NOT EXISTS {VOCABULARY_TABLE} (word text PRIMARY KEY);

CREATE OR REPLACE FUNCTION captioning_caption_words_index(photo bigint) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM {WORDS_TABLE} WHERE photo_id = photo;
    INSERT INTO {WORDS_TABLE} (word, photo_id) {_WORDS_OF.format(photos="c.photo_id = photo", separators=_SEPARATORS)}
    ON CONFLICT DO NOTHING;
    INSERT INTO {VOCABULARY_TABLE} (word) SELECT word FROM {WORDS_TABLE} WHERE photo_id = photo
    ON CONFLICT DO NOTHING;
END
$$;

CREATE OR REPLACE FUNCTION captioning_caption_words_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        PERFORM captioning_caption_words_index(OLD.photo_id);
    END IF;
    IF TG_OP <> 'DELETE' AND (TG_OP = 'INSERT' OR NEW.photo_id <> OLD.photo_id) THEN
        PERFORM captioning_caption_words_index(NEW.photo_id);
    END IF;
    RETURN NULL;
END
$$;
CREATE OR REPLACE TRIGGER captioning_caption_words_sync
AFTER INSERT OR DELETE OR UPDATE OF text, is_current, photo_id ON captioning_caption
FOR EACH ROW EXECUTE FUNCTION captioning_caption_words_sync();

CREATE OR REPLACE FUNCTION captioning_translation_words_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        PERFORM captioning_caption_words_index(photo_id) FROM captioning_caption WHERE id = OLD.caption_id;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        PERFORM captioning_caption_words_index(photo_id) FROM captioning_caption WHERE id = NEW.caption_id;
    END IF;
    RETURN NULL;
END
$$;
CREATE OR REPLACE TRIGGER captioning_translation_words_sync
AFTER INSERT OR DELETE OR UPDATE OF text, status, caption_id ON captioning_translation
FOR EACH ROW EXECUTE FUNCTION captioning_translation_words_sync();

CREATE OR REPLACE FUNCTION captioning_caption_words_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE {WORDS_TABLE};
    RETURN NULL;
END
$$;
CREATE OR REPLACE TRIGGER captioning_caption_words_truncate AFTER TRUNCATE ON captioning_caption
FOR EACH STATEMENT EXECUTE FUNCTION captioning_caption_words_truncate();
"""

DROP_SQL = f"""
DROP TRIGGER IF EXISTS captioning_caption_words_truncate ON captioning_caption;
DROP TRIGGER IF EXISTS captioning_translation_words_sync ON captioning_translation;
DROP TRIGGER IF EXISTS captioning_caption_words_sync ON captioning_caption;
DROP FUNCTION IF EXISTS captioning_caption_words_truncate();
DROP FUNCTION IF EXISTS captioning_translation_words_sync();
DROP FUNCTION IF EXISTS captioning_caption_words_sync();
DROP FUNCTION IF EXISTS captioning_caption_words_index(bigint);
DROP TABLE IF EXISTS {VOCABULARY_TABLE};
DROP TABLE IF EXISTS {WORDS_TABLE};
"""


def caption_words_fill(database=connection) -> None:
    """Indexes every photo's words at once (the migration's, and a bulk load's with the triggers off)."""
    with database.cursor() as cursor:
        cursor.execute(f"TRUNCATE {WORDS_TABLE}")
        cursor.execute(
            f"INSERT INTO {WORDS_TABLE} (word, photo_id) {_WORDS_OF.format(photos='TRUE', separators=_SEPARATORS)}"
        )
        cursor.execute(
            f"INSERT INTO {VOCABULARY_TABLE} (word) SELECT DISTINCT word FROM {WORDS_TABLE} ON CONFLICT DO NOTHING"
        )
        # Statistics at once: until autovacuum came by, PostgreSQL planned search on the new tables blind (the load
        # benchmark's search made 42 requests/s right after the migration, 83 after ANALYZE).
        cursor.execute(f"ANALYZE {WORDS_TABLE}, {VOCABULARY_TABLE}")
