"""What a search returns: the ranked hits, and a page of them read back as rows."""

from dataclasses import dataclass, field

from captioning.selectors import UserOrAnonymous, photo_rows_visible_by_id, photo_rows_with_details


@dataclass(frozen=True)
class SearchHit:
    photo_id: int
    score: float  # fused: higher is better
    image_similarity: float | None  # cosine between the query's and the photo's CLIP embeddings
    text_match: float | None  # share of the query's words found in the caption or a translation (+1 phrase)


@dataclass
class SearchResults:
    """The ranked hits of one query. Sliced (a page), it reads those photos as rows, visible ones only, in order."""

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

    def __getitem__(self, index: int | slice) -> dict | list[dict]:
        """Rows of `selectors.photo_rows_with_details`, each with its `search_hit`."""
        hits = self.hits[index] if isinstance(index, slice) else [self.hits[index]]
        if not hits:
            return []
        # Visibility is checked again: a photo deleted or hidden since it was ranked is left out.
        rows = photo_rows_visible_by_id(acting_user=self.user, photo_ids=[hit.photo_id for hit in hits])
        by_id = {row["id"]: row for row in photo_rows_with_details(rows, acting_user=self.user)}
        page = []
        for hit in hits:
            row = by_id.get(hit.photo_id)
            if row is not None:
                row["search_hit"] = hit
                page.append(row)
        return page if isinstance(index, slice) else page[0]
