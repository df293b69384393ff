"""Rebuilds the IVFFlat indexes of image search (PostgreSQL with pgvector), their lists sized for the photos
there are now: after a bulk import, or when the photos have grown several times over since the last build (the
migration that made them sized them for the photos of that day)."""

from django.core.management.base import BaseCommand, CommandError

from captioning.search import pgvector


class Command(BaseCommand):
    help = __doc__

    def handle(self, *args, **options):
        if not pgvector.in_use():
            raise CommandError("this database has no pgvector vector table: image search runs in memory here")
        for dimensions, lists in pgvector.vector_indexes_build().items():
            self.stdout.write(f"{dimensions}-d embeddings: IVFFlat index with {lists} list(s)")
