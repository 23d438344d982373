from celery import shared_task


@shared_task(name="accounts.tasks.invitation_purge_expired_task", acks_late=True)
def invitation_purge_expired_task(older_than_days: int = 30) -> int:
    from accounts.services import invitation_purge_expired

    return invitation_purge_expired(older_than_days=older_than_days)
