from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils.text import slugify

from captioning.models import Gallery, GalleryMembership, GalleryPhoto, Photo
from captioning.selectors import gallery_can_edit
from captioning.services.photos import photo_files_delete_on_commit


def gallery_create(
    *, acting_user: AbstractBaseUser, title: str, description: str = "", visibility: str = Gallery.Visibility.PRIVATE
) -> Gallery:
    """A new gallery owned by `acting_user`."""
    gallery = Gallery(
        owner=acting_user,
        title=title.strip(),
        slug=_slug(title),
        description=description.strip(),
        visibility=visibility,
    )
    gallery.full_clean()
    gallery.save()
    return gallery


def gallery_update(
    *, gallery: Gallery, acting_user: AbstractBaseUser, title: str, description: str, visibility: str
) -> Gallery:
    _require_owner(acting_user, gallery)
    gallery.title = title.strip()
    gallery.slug = _slug(title)
    gallery.description = description.strip()
    gallery.visibility = visibility
    gallery.full_clean()
    gallery.save()
    return gallery


def gallery_delete(*, gallery: Gallery, acting_user: AbstractBaseUser) -> None:
    """Deletes the gallery and the photos no other gallery holds, with their files (once the deletion is
    committed). Photos other galleries hold stay there."""
    _require_owner(acting_user, gallery)
    _delete_with_photos(Gallery.objects.filter(pk=gallery.pk))


def gallery_delete_many(*, galleries: QuerySet[Gallery], acting_user: AbstractBaseUser) -> int:
    """Staff with the right to delete galleries (the admin): deletes `galleries` and the photos no other gallery
    holds, with their files. Returns how many galleries."""
    if not acting_user.has_perm("captioning.delete_gallery"):
        raise PermissionDenied("Only staff with the right to delete galleries can delete others' galleries.")
    return _delete_with_photos(galleries)


@transaction.atomic
def _delete_with_photos(galleries: QuerySet[Gallery]) -> int:
    ids = list(galleries.values_list("pk", flat=True))
    held_here = GalleryPhoto.objects.filter(gallery_id__in=ids).values("photo_id")
    held_elsewhere = GalleryPhoto.objects.filter(~Q(gallery_id__in=ids)).values("photo_id")
    only_here = Photo.objects.filter(pk__in=held_here).exclude(pk__in=held_elsewhere)
    photo_files_delete_on_commit(only_here)
    Photo.objects.filter(pk__in=list(only_here.values_list("pk", flat=True))).delete()
    Gallery.objects.filter(pk__in=ids).delete()
    return len(ids)


def gallery_cover_set(*, gallery: Gallery, photo: Photo | None, acting_user: AbstractBaseUser) -> Gallery:
    """Makes `photo` (one of the gallery's) its cover on every gallery card; None goes back to the first photo."""
    _require_owner(acting_user, gallery)
    if photo is not None and not GalleryPhoto.objects.filter(gallery=gallery, photo=photo).exists():
        raise ValidationError("The cover of a gallery is one of its own photos.")
    gallery.cover_photo = photo
    gallery.save(update_fields=["cover_photo"])
    return gallery


def gallery_member_set(
    *, gallery: Gallery, acting_user: AbstractBaseUser, username: str, role: str
) -> GalleryMembership:
    """Adds `username` to the gallery with `role`, or changes their role."""
    _require_owner(acting_user, gallery)
    if role not in GalleryMembership.Role.values:
        raise ValidationError(f"Unknown role {role!r}; choose viewer or editor.")
    user = get_user_model().objects.filter(username__iexact=username.strip()).first()
    if user is None:
        raise ValidationError(f"There is no user called {username.strip()!r}.")
    if user.pk == gallery.owner_id:
        raise ValidationError("The owner of a gallery is not one of its members.")
    membership, _created = GalleryMembership.objects.update_or_create(
        gallery=gallery, user=user, defaults={"role": role}
    )
    return membership


def gallery_member_remove(*, gallery: Gallery, acting_user: AbstractBaseUser, user_id: int) -> None:
    _require_owner(acting_user, gallery)
    GalleryMembership.objects.filter(gallery=gallery, user_id=user_id).delete()


def _require_owner(user: AbstractBaseUser, gallery: Gallery) -> None:
    if not gallery_can_edit(user, gallery):
        raise PermissionDenied("Only the owner of a gallery can change it.")


def _slug(title: str) -> str:
    return slugify(title, allow_unicode=True)[:200] or "gallery"
