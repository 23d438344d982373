from django.apps import AppConfig


class KnowledgeConfig(AppConfig):
    """Knowledge bases: documents, their chunks and embeddings, and retrieval.

    ``knowledge.processing`` is the text engine underneath: it reads a document's
    text (PDF or plain text), cuts it into chunks that fit the embedding model,
    and embeds them locally. It holds no state of an organization and touches
    no database.
    """

    default_auto_field = "django.db.models.BigAutoField"
    name = "knowledge"
    verbose_name = "Knowledge bases"

    def ready(self):
        from django.core import checks

        from knowledge.checks import check_chunk_security

        checks.register(check_chunk_security, checks.Tags.database)

        # `seed_demo` gives Acme Dental an indexed patient handbook.
        from accounts.management.commands.seed_demo import demo_organization_ready
        from knowledge.demo import demo_knowledge_base_create

        demo_organization_ready.connect(demo_knowledge_base_create, dispatch_uid="knowledge-demo-base")
