"""Error pages help the person in front of them, even when the database is the problem."""

import pytest
from django.test import RequestFactory

from jagcall.kernel.views import server_error


@pytest.mark.django_db
def test_500_page_needs_no_database_and_quotes_the_request_id(django_assert_num_queries):
    request = RequestFactory().get("/o/acme/")
    request.request_id = "3f2a9c0d11e94b7a"
    with django_assert_num_queries(0):
        response = server_error(request)
    assert response.status_code == 500
    assert b"3f2a9c0d11e94b7a" in response.content


@pytest.mark.django_db
def test_404_page_says_what_to_do(client):
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    body = response.content.decode()
    assert "href=\"/\"" in body
