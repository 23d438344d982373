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
