"""Property: `photo_list_visible_to(..., one_by_one=True)` (the SQL that tests each photo given to it, which
image search in PostgreSQL asks for its index's candidates) finds exactly the photos of the default SQL, for
every viewer, in any world of galleries, memberships and albums (a photo in none, one or several galleries)."""

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from captioning.models import Gallery, GalleryMembership, GalleryPhoto, Photo
from captioning.selectors import photo_list_visible_to

pytestmark = pytest.mark.django_db

PEOPLE = 3
galleries = st.lists(
    st.tuples(
        st.integers(0, PEOPLE - 1),  # owner
        st.sampled_from(["private", "unlisted", "public"]),
        st.sets(st.tuples(st.integers(0, PEOPLE - 1), st.sampled_from(["viewer", "editor"])), max_size=2),
    ),
    max_size=4,
)
photos = st.lists(st.tuples(st.integers(0, PEOPLE - 1), st.sets(st.integers(0, 3), max_size=3)), max_size=8)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(gallery_specs=galleries, photo_specs=photos)
def test_both_shapes_of_the_visibility_rule_find_the_same_photos(gallery_specs, photo_specs):
    with transaction.atomic():
        people = [get_user_model().objects.create(username=f"person{n}") for n in range(PEOPLE)]
        made = []
        for number, (owner, visibility, members) in enumerate(gallery_specs):
            gallery = Gallery.objects.create(
                owner=people[owner], title=f"g{number}", slug=f"g{number}", visibility=visibility
            )
            for member, role in dict(members).items():
                if member != owner:
                    GalleryMembership.objects.create(gallery=gallery, user=people[member], role=role)
            made.append(gallery)
        for number, (owner, held_by) in enumerate(photo_specs):
            photo = Photo.objects.create(
                owner=people[owner], sha256=f"{number:064x}", byte_size=1, width=1, height=1, format="JPEG"
            )
            for index in held_by:
                if index < len(made):
                    GalleryPhoto.objects.create(gallery=made[index], photo=photo)
        for viewer in [None, *people]:
            for include_unlisted in (False, True):
                default = photo_list_visible_to(viewer, include_unlisted=include_unlisted)
                one_by_one = photo_list_visible_to(viewer, include_unlisted=include_unlisted, one_by_one=True)
                assert sorted(one_by_one.values_list("pk", flat=True)) == sorted(default.values_list("pk", flat=True))
        transaction.set_rollback(True)
