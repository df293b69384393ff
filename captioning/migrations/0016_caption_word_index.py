"""On PostgreSQL, the caption word index (captioning/search/words.py): a table of (word, photo) read newest photo
first, the vocabulary it holds, and the triggers that keep both current; filled once here. Caption search reads a
few of each word's newest photos from it instead of every caption holding the word. Nothing to do on SQLite, whose
caption search reads the captions themselves."""

from django.db import migrations

from captioning.search.words import CREATE_SQL, DROP_SQL, caption_words_fill


def create_word_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(CREATE_SQL)
    caption_words_fill(schema_editor.connection)


def drop_word_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(DROP_SQL)


class Migration(migrations.Migration):
    dependencies = [("captioning", "0015_photo_list_page_indexes")]

    operations = [migrations.RunPython(create_word_index, drop_word_index)]
