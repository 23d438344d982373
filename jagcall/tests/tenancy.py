"""The wiring's cases for the cross-tenant walk (accounts/tests/urlwalk.py): routes that carry no organization."""

# url name -> why it needs no organization in its route
PUBLIC_ROUTES = {
    "healthz": "liveness probe, no data",
    "readyz": "readiness probe, no data",
    "api-schema": "the API's OpenAPI description, public on purpose: no organization, person or data in it",
    "api-docs": "the page that renders the public API description; static assets and the schema only",
}
