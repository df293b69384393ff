"""Search by caption words: the words of the query (common words like "a" or "the" left out) in the current
caption or in any of its stored translations, case-insensitive; more words matched ranks higher, the whole
phrase higher still. On PostgreSQL, the caption word index (words.py, migration 0016) names the candidates: for
each query word, the newest photos holding it (SEARCH_WORD_CANDIDATES of them), so a common word costs no more
than a rare one; on SQLite every caption is read (helped by nothing: SQLite's LIKE has no index here).

One SQL statement reads captions and translations together, counts and sorts in the database, and says which
captions are guesses (search ranks them last), so only the best rows come back and nothing is asked twice. The
match is Django's `icontains`, written out with the database's own operator and escaping (`UPPER(text) LIKE
UPPER(...)` on PostgreSQL, which the trigram indexes serve; `LIKE ... ESCAPE` on SQLite).
"""

import re
from dataclasses import dataclass

from django.conf import settings
from django.db import connection

from captioning.models import Caption, Translation
from captioning.search.words import VOCABULARY_TABLE, WORDS_TABLE
from captioning.selectors import UserOrAnonymous, photo_visible_sql

MAX_QUERY_WORDS = 8

# Words nearly every caption has, in English and the languages captions are usually translated into: they
# would match (as substrings, too) almost everything and drown the words that say what the photo shows.
STOP_WORDS = frozenset(
    word
    for words in (
        "a an the of on in at to with and or is are its it by for from into onto this that there",  # English
        "le la les un une des de du et sur dans avec au aux en",  # French
        "der die das ein eine einen und mit auf im am",  # German
        "el los las una y con del",  # Spanish
        "il lo gli e su di da",  # Italian
        "o os as um uma em no na",  # Portuguese
        "het een op",  # Dutch
        "i w z",  # Polish
    )
    for word in words.split()
)


def query_words(query: str) -> list[str]:
    """The distinct words of `query` to look for in captions, common function words left out (unless the query
    has nothing else)."""
    words = list(dict.fromkeys(re.findall(r"\w+", query.lower())))
    meaningful = [word for word in words if word not in STOP_WORDS]
    return (meaningful or words)[:MAX_QUERY_WORDS]


@dataclass(frozen=True)
class TextRanking:
    ranked: list[tuple[int, float]]  # (photo id, text score), best first
    unsure: set[int]  # the ranked photos whose current caption is a guess (Caption.confident False)


def text_ranking(user: UserOrAnonymous | None, query: str, limit: int) -> TextRanking:
    """The photos `user` may see whose current caption or one of its translations holds at least one of the
    query's words, best first, at most `limit`. The score is the share of the words found in one text, plus 1
    when it holds the whole query as written (a text holding the phrase holds every word, so the database ranks
    by words found + phrase found).

    The matching texts are ranked first, and visibility is then asked of each candidate in that order (the
    selector's own SQL, given that one photo: `photo_visible_sql`) until `limit` are found: a common word's many
    candidates are not each tested, and no user's whole visible set is worked out. On PostgreSQL only the word
    index's candidates are ranked (each word's newest SEARCH_WORD_CANDIDATES photos, visible or not), so a photo
    older than those of each of its words is found by image only; on SQLite every matching text is ranked."""
    words = query_words(query)
    if not words:
        return TextRanking([], set())
    phrase = query.lower() if len(words) > 1 else None
    candidates_sql, candidates_params = "", []
    if connection.vendor == "postgresql":
        candidates_sql = f"WITH word_candidates AS MATERIALIZED ({_NEWEST_HOLDING_EACH_WORD}) "
        candidates_params = [words, settings.SEARCH_WORD_CANDIDATES, settings.SEARCH_WORD_CANDIDATES]
    text_sql, text_params = _matching_texts(words, phrase, among_candidates=bool(candidates_sql))
    visible_sql, visible_params = photo_visible_sql(user, photo_id_sql="candidates.photo_id")
    # The fence keeps the visibility test out of the ranking subquery (PostgreSQL and SQLite would otherwise
    # move it down to every text row); the outer ORDER BY is the subquery's, so nothing is sorted again and the
    # LIMIT stops the tests.
    fence = "OFFSET 0" if connection.vendor == "postgresql" else "LIMIT -1"
    sql = candidates_sql + (
        "SELECT photo_id, best, unsure FROM ("
        f"SELECT photo_id, MAX(found) AS best, MAX(unsure) AS unsure FROM ({text_sql}) AS texts "
        f"GROUP BY photo_id ORDER BY best DESC, photo_id DESC {fence}) AS candidates "
        f"WHERE EXISTS ({visible_sql}) ORDER BY best DESC, photo_id DESC LIMIT %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*candidates_params, *text_params, *visible_params, limit])
        rows = cursor.fetchall()
    count = len(words)
    ranked = [(photo_id, found / count if found <= count else 2.0) for photo_id, found, _unsure in rows]
    return TextRanking(ranked, {photo_id for photo_id, _found, unsure in rows if unsure})


# The photos of the word index's candidates (PostgreSQL): for each query word, the indexed words it is a part of
# (from the vocabulary), each one's newest photos, and of those the newest SEARCH_WORD_CANDIDATES. Every list is
# read from the index's primary key in its order and cut by its LIMIT, so no word's photos are all read.
_NEWEST_HOLDING_EACH_WORD = f"""
SELECT DISTINCT newest.photo_id FROM unnest(%s::text[]) AS query (word)
CROSS JOIN LATERAL (
    SELECT indexed.photo_id FROM {VOCABULARY_TABLE} AS vocabulary
    CROSS JOIN LATERAL (
        SELECT photo_id FROM {WORDS_TABLE} WHERE word = vocabulary.word ORDER BY photo_id DESC LIMIT %s
    ) AS indexed
    WHERE strpos(vocabulary.word, query.word) > 0
    ORDER BY indexed.photo_id DESC LIMIT %s
) AS newest
"""


def _matching_texts(words: list[str], phrase: str | None, *, among_candidates: bool) -> tuple[str, list]:
    """SQL of (photo_id, found, unsure) for every current caption and stored translation that holds a word (of
    the photos in `word_candidates`, the word index's, when `among_candidates`): `found` counts the words it holds, +1
    for the phrase; `unsure` is 1 for a guessed caption."""
    caption, translation = Caption._meta.db_table, Translation._meta.db_table
    sources = [
        (f"{caption} c", "c.text", ""),
        (
            f"{translation} t JOIN {caption} c ON c.id = t.caption_id",
            "t.text",
            f"AND t.status = '{Translation.Status.DONE.value}'",
        ),
    ]
    among = "AND c.photo_id = ANY(ARRAY(SELECT photo_id FROM word_candidates))" if among_candidates else ""
    parts, params = [], []
    for source, text, condition in sources:
        holds = [_holds(text, word) for word in words]
        found = " + ".join(f"CASE WHEN {sql} THEN 1 ELSE 0 END" for sql, _ in holds)
        found_params = [param for _, param in holds]
        if phrase is not None:
            phrase_sql, phrase_param = _holds(text, phrase)
            found += f" + CASE WHEN {phrase_sql} THEN 1 ELSE 0 END"
            found_params.append(phrase_param)
        parts.append(
            f"SELECT c.photo_id, {found} AS found, CASE WHEN c.confident THEN 0 ELSE 1 END AS unsure "
            f"FROM {source} WHERE c.is_current {condition} {among} AND ({' OR '.join(sql for sql, _ in holds)})"
        )
        params += [*found_params, *(param for _, param in holds)]
    return " UNION ALL ".join(parts), params


def _holds(column: str, text: str) -> tuple[str, str]:
    """`column` contains `text`, case-insensitive: SQL and its parameter, as Django's `icontains` writes them."""
    column_sql = connection.ops.lookup_cast("icontains", "TextField") % column
    return f"{column_sql} {connection.operators['icontains'] % '%s'}", f"%{connection.ops.prep_for_like_query(text)}%"
