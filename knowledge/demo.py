"""Acme Dental's demo knowledge base (`make run`, ``manage.py seed_demo``): its patient handbook, already
indexed, so a newcomer sees retrieval work at once (the playground, and the demo agent that answers from it).

Connected to seed_demo's ``demo_organization_ready`` in KnowledgeConfig.ready(); telephony's demo agent
links it (telephony/demo.py). The handbook is this project's own text, in knowledge/demo_content/.
"""

from __future__ import annotations

from pathlib import Path

from knowledge.models import Document, DocumentStatus, KnowledgeBase
from knowledge.services import document_add, document_process, knowledge_base_create

DEMO_KNOWLEDGE_BASE = "Patient handbook"
DEMO_DOCUMENT = Path(__file__).resolve().parent / "demo_content" / "acme-dental-handbook.md"


def demo_knowledge_base_ensure(*, organization, owner) -> tuple[KnowledgeBase, bool]:
    """The demo knowledge base with its handbook indexed; made only once (True when made now)."""
    knowledge_base = KnowledgeBase.objects.for_org(organization).filter(name=DEMO_KNOWLEDGE_BASE).first()
    if knowledge_base is not None:
        return knowledge_base, False
    knowledge_base = knowledge_base_create(
        organization=organization,
        actor=owner,
        name=DEMO_KNOWLEDGE_BASE,
        description="Opening hours, prices, insurance, emergencies and parking: what callers ask the front desk.",
    )
    document = document_add(
        organization=organization,
        actor=owner,
        knowledge_base=knowledge_base,
        name=DEMO_DOCUMENT.name,
        content=DEMO_DOCUMENT.read_bytes(),
    )
    # Indexed now, so it is ready on the first page view (the queued task then finds it ready).
    document_process(document)
    knowledge_base.refresh_from_db()
    return knowledge_base, True


def demo_knowledge_base_create(sender, *, organization, owner, **kwargs) -> str | None:
    knowledge_base, _made = demo_knowledge_base_ensure(organization=organization, owner=owner)
    ready = Document.objects.for_org(organization).filter(
        knowledge_base=knowledge_base, status=DocumentStatus.READY
    ).count()
    return (
        f"knowledge  “{knowledge_base.name}” indexed ({ready} document{'' if ready == 1 else 's'}, "
        f"{knowledge_base.chunk_count} passages): Knowledge -> Try a question"
    )
