"""Cursor pagination for every list: stable under inserts, no page counting."""

from rest_framework import pagination


class CursorPagination(pagination.CursorPagination):
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 200
    ordering = "-created_at"
    cursor_query_description = "Where the page starts: take it from `next` or `previous` as given (opaque)."
    page_size_query_description = "How many results per page (1-200, default 50)."

    # How the OpenAPI schema (jagcall/kernel/api/schema/) describes a list. OpenAPI 3.1:
    # a nullable value is a type list, not ``nullable: true``.
    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"] = {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": self.max_page_size,
                    "default": self.page_size,
                }
        return parameters

    def get_paginated_response_schema(self, schema):
        link = {"type": ["string", "null"], "format": "uri"}
        return {
            "type": "object",
            "properties": {
                "next": {**link, "description": "The next page, or null on the last one. Follow it as given."},
                "previous": {**link, "description": "The previous page, or null on the first one."},
                "results": schema,
            },
            "required": ["next", "previous", "results"],
        }
