from collections.abc import Callable

from django.core.paginator import EmptyPage, InvalidPage, PageNotAnInteger, Paginator
from django.utils.functional import cached_property
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import PageNumberPagination

LARGEST_OFFSET = 2**63 - 1  # PostgreSQL's bigint and SQLite's integer


class ListPaginator(Paginator):
    """Django's Paginator, but a page is read before the list is counted: a page shorter than the page size (the
    gallery list, most often) tells the count without a COUNT query. `count` counts some cheaper way than the page's
    query would (which may join tables only the page's rows need); `read` says how the list is read (as rows, say)."""

    def __init__(
        self,
        object_list,
        per_page: int,
        *,
        count: Callable[[], int] | None = None,
        read_page: Callable[..., list] | None = None,
    ) -> None:
        super().__init__(object_list, per_page)
        self._count, self._read_page = count, read_page

    @cached_property
    def count(self) -> int:
        return self._count() if self._count is not None else super().count

    def page(self, number):
        number = _page_number(number, self.error_messages)
        bottom = (number - 1) * self.per_page
        if bottom + self.per_page > LARGEST_OFFSET:  # no list is that long, and no database takes such an offset
            raise EmptyPage(self.error_messages["no_results"])
        if self._read_page is not None:
            rows = self._read_page(offset=bottom, limit=self.per_page)
        else:
            rows = list(self.object_list[bottom : bottom + self.per_page])
        if 0 < len(rows) < self.per_page or (bottom == 0 and not rows):
            self.count = bottom + len(rows)
        return self._get_page(rows, self.validate_number(number), self)


def _page_number(number, error_messages: dict) -> int:
    """The first checks of Paginator.validate_number, those that need no count."""
    try:
        if isinstance(number, float) and not number.is_integer():
            raise ValueError
        number = int(number)
    except (TypeError, ValueError):
        raise PageNotAnInteger(error_messages["invalid_page"]) from None
    if number < 1:
        raise EmptyPage(error_messages["min_page"])
    return number


class ApiPagination(PageNumberPagination):
    """?page=N&page_size=M (1 to 200); the page size defaults to REST_FRAMEWORK["PAGE_SIZE"]. A page size that
    is not a number in range is refused (400), not silently replaced."""

    page_size_query_param = "page_size"
    max_page_size = 200
    django_paginator_class = ListPaginator

    def paginate_queryset(self, queryset, request, view=None, *, count=None, read_page=None):
        """DRF's PageNumberPagination.paginate_queryset, with ListPaginator's `count` and `read_page`."""
        self.request = request
        page_size = self.get_page_size(request)
        if not page_size:
            return None
        paginator = self.django_paginator_class(queryset, page_size, count=count, read_page=read_page)
        page_number = self.get_page_number(request, paginator)
        try:
            self.page = paginator.page(page_number)
        except InvalidPage as error:
            raise NotFound(self.invalid_page_message.format(page_number=page_number, message=str(error))) from None
        if paginator.num_pages > 1 and self.template is not None:
            self.display_page_controls = True  # the browsable API's page links
        return list(self.page.object_list)  # what list(self.page) gives, without a Python call per row

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not raw.isdigit() or not 1 <= int(raw) <= self.max_page_size:
            raise ValidationError({"page_size": [f"A whole number from 1 to {self.max_page_size}."]})
        return int(raw)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"].update({"minimum": 1, "maximum": self.max_page_size})
            if parameter["name"] == self.page_query_param:
                parameter["schema"].update({"minimum": 1})
        return parameters
