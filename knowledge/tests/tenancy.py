"""knowledge's cases for the cross-tenant walk (accounts/tests/urlwalk.py)."""

from __future__ import annotations

# kwarg -> how to make an object of that kind inside an organization
OBJECT_KWARGS: dict = {}


def _make_knowledge_base(organization):
    from knowledge.models import KnowledgeBase

    return KnowledgeBase.objects.create(organization=organization, name=f"Handbook of {organization.name}").id


def _make_document(organization):
    from accounts.principals import Principal
    from knowledge.models import KnowledgeBase
    from knowledge.services import document_add

    base = KnowledgeBase.objects.create(organization=organization, name=f"Price list of {organization.name}")
    return document_add(
        organization=organization, actor=Principal.system("operator"), knowledge_base=base, name="prices.txt",
        content=f"Prices of {organization.pk}: a check-up costs 80 dollars.".encode(),
    ).id  # fmt: skip


OBJECT_KWARGS["knowledge_base_id"] = _make_knowledge_base
OBJECT_KWARGS["document_id"] = _make_document
