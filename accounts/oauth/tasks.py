from celery import shared_task


@shared_task(name="accounts.oauth.tasks.oauth_tokens_purge_expired_task", acks_late=True)
def oauth_tokens_purge_expired_task() -> dict:
    from accounts.oauth.services import oauth_tokens_purge_expired

    return oauth_tokens_purge_expired()
