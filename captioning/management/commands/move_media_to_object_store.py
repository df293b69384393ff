"""Moves the photos' files from the file system (MEDIA_ROOT) into the configured object store."""

from pathlib import Path

from django.conf import settings
from django.core.files.storage import FileSystemStorage, default_storage
from django.core.management.base import BaseCommand, CommandError

from captioning.media import is_object_store
from captioning.services.media_moves import MediaMoveReport, media_move


class Command(BaseCommand):
    help = (
        "Copy every photo's files from the file system into the object store (AWS_STORAGE_BUCKET_NAME), checking each "
        "copy by checksum. Run it again after a stop: it goes on where it was. --delete-local also removes each "
        "checked file from the file system."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--source", type=Path, help=f"the media folder to move from (default: MEDIA_ROOT, {settings.MEDIA_ROOT})"
        )
        parser.add_argument(
            "--delete-local",
            action="store_true",
            help="delete each file from the media folder once its copy in the store is checked",
        )

    def handle(self, *args, source: Path | None, delete_local: bool, **options):
        if not is_object_store(default_storage):
            raise CommandError(
                "The media storage is the file system: set AWS_STORAGE_BUCKET_NAME (and AWS_S3_ENDPOINT_URL for a store "
                "other than AWS S3) to name the object store to move to."
            )
        folder = source or Path(settings.MEDIA_ROOT)
        if not folder.is_dir():
            raise CommandError(f"There is no media folder at {folder}.")
        report = media_move(
            source=FileSystemStorage(location=folder),
            destination=default_storage,
            delete_from_source=delete_local,
            progress=self._show_progress,
        )
        self.stdout.write(
            f"{report.copied} files copied, {report.already_there} already in the store, "
            f"{report.deleted_from_source} deleted from {folder}."
        )
        if report.failed:
            for name in report.missing:
                self.stderr.write(f"missing in both stores: {name}")
            for name in report.mismatched:
                self.stderr.write(f"copy differs from the file (kept): {name}")
            raise CommandError(f"{len(report.missing)} files missing, {len(report.mismatched)} copies differ.")

    def _show_progress(self, photos_done: int, report: MediaMoveReport) -> None:
        self.stdout.write(f"{photos_done} photos: {report.copied} files copied, {report.already_there} already there")
