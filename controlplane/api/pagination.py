from rest_framework.pagination import LimitOffsetPagination


class Pagination(LimitOffsetPagination):
    """``?limit=&offset=`` pages; 50 items by default, at most 1000."""

    default_limit = 50
    max_limit = 1000
