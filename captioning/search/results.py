"""What a search returns: the ranked hits, and a page of them read back as photos."""

from dataclasses import dataclass, field

from captioning.models import Photo
from captioning.selectors import UserOrAnonymous, photo_list_visible_to, photo_with_current_caption


@dataclass(frozen=True)
class SearchHit:
    photo_id: int
    score: float  # fused: higher is better
    image_similarity: float | None  # cosine between the query's and the photo's CLIP embeddings
    text_match: float | None  # share of the query's words found in the caption or a translation (+1 phrase)


@dataclass
class SearchResults:
    """The ranked hits of one query. Sliced (a page), it reads those photos, visible ones only, in order."""

    user: UserOrAnonymous | None
    query: str
    hits: list[SearchHit]
    image_search: bool  # the CLIP part ran (it cannot without an embedded photo or a loadable model)
    image_cutoffs: dict[str, float]  # the cosine a photo needed to be found by image, by model name
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.hits)

    @property
    def summary(self) -> str:
        """What the page and the API say about the hits: every one matched well, by image or by words."""
        if not self.hits:
            return "No photos match well"
        return f"{len(self.hits)} best match{'' if len(self.hits) == 1 else 'es'}"

    def count(self) -> int:
        return len(self.hits)

    def __getitem__(self, index: int | slice) -> Photo | list[Photo]:
        hits = self.hits[index] if isinstance(index, slice) else [self.hits[index]]
        if not hits:
            return []
        # Visibility is checked again: a photo deleted or hidden since it was ranked is left out.
        visible = photo_list_visible_to(self.user).filter(pk__in=[hit.photo_id for hit in hits])
        photos = {photo.pk: photo for photo in photo_with_current_caption(visible, acting_user=self.user)}
        page = []
        for hit in hits:
            photo = photos.get(hit.photo_id)
            if photo is not None:
                photo.search_hit = hit
                page.append(photo)
        return page if isinstance(index, slice) else page[0]
