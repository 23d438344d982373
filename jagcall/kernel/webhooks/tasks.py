from celery import shared_task


@shared_task(name="jagcall.kernel.webhooks.tasks.received_webhooks_purge_task", acks_late=True)
def received_webhooks_purge_task() -> int:
    from jagcall.kernel.webhooks.services import received_webhooks_purge

    return received_webhooks_purge()
