"""Background and live work: Celery (broker, queues, the beat schedule) and the Channels layer."""

from __future__ import annotations

from celery.schedules import crontab

from jagcall.kernel.env import env
from jagcall.settings.services import REDIS_BROKER_URL, REDIS_CHANNELS_URL

# --- Celery --------------------------------------------------------------------
CELERY_BROKER_URL = REDIS_BROKER_URL
CELERY_RESULT_BACKEND = REDIS_BROKER_URL
CELERY_RESULT_EXPIRES = 60 * 60 * 24
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env("CELERY_TASK_SOFT_TIME_LIMIT", default=240, cast=int)
CELERY_TASK_TIME_LIMIT = env("CELERY_TASK_TIME_LIMIT", default=300, cast=int)
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_TASK_TIME_LIMIT * 2}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False  # keep our JSON log format in workers and beat
CELERY_TASK_QUEUES_NAMES = ("default", "transcription", "embeddings", "webhooks")
CELERY_TASK_ROUTES = {
    "telephony.tasks.*transcri*": {"queue": "transcription"},
    "knowledge.tasks.*": {"queue": "embeddings"},
    "integrations.tasks.webhook_*": {"queue": "webhooks"},
}
# Post-call pipeline (telephony/tasks.py): retryable provider errors wait base * 2**n seconds (capped), 5 retries.
POST_CALL_RETRY_BASE_SECONDS = env("POST_CALL_RETRY_BASE_SECONDS", default=15, cast=int)
POST_CALL_RETRY_MAX_SECONDS = env("POST_CALL_RETRY_MAX_SECONDS", default=900, cast=int)
CELERY_BEAT_SCHEDULE = {
    # https://crontab.guru/#17_3_*_*_* : every day at 03:17 UTC
    "invitations-purge-expired": {
        "task": "accounts.tasks.invitation_purge_expired_task",
        "schedule": crontab(minute=17, hour=3),
    },
    # https://crontab.guru/#7_*_*_*_* : every hour at minute 7
    "oauth-tokens-purge-expired": {
        "task": "accounts.oauth.tasks.oauth_tokens_purge_expired_task",
        "schedule": crontab(minute=7),
    },
    # https://crontab.guru/#41_2_*_*_* : every day at 02:41 UTC
    "audit-purge-expired-events": {
        "task": "compliance.tasks.purge_expired_events",
        "schedule": crontab(minute=41, hour=2),
    },
    # https://crontab.guru/#23_4_*_*_* : every day at 04:23 UTC
    "audit-verify-chains": {
        "task": "compliance.tasks.verify_chains",
        "schedule": crontab(minute=23, hour=4),
    },
    # https://crontab.guru/#53_3_*_*_* : every day at 03:53 UTC, after the purge (02:41), before verification (04:23)
    "audit-write-chain-digests": {
        "task": "compliance.tasks.write_chain_digests",
        "schedule": crontab(minute=53, hour=3),
    },
    # https://crontab.guru/#11_5_*_*_* : every day at 05:11 UTC, each US number's A2P 10DLC registration read again
    "messaging-a2p-refresh": {
        "task": "messaging.tasks.a2p_status_refresh_all_task",
        "schedule": crontab(minute=11, hour=5),
    },
    # https://crontab.guru/#29_3_*_*_* : every day at 03:29 UTC (webhook deliveries older than WEBHOOK_DEDUPE_DAYS)
    "received-webhooks-purge": {
        "task": "jagcall.kernel.webhooks.tasks.received_webhooks_purge_task",
        "schedule": crontab(minute=29, hour=3),
    },
    # https://crontab.guru/#*/5_*_*_*_* : every 5 minutes (documents whose processing stopped: a worker killed)
    "knowledge-requeue-stalled-documents": {
        "task": "knowledge.tasks.documents_requeue_stalled_task",
        "schedule": crontab(minute="*/5"),
    },
    # https://crontab.guru/#*_*_*_*_* : every minute (usage not yet reported to Stripe, in batches)
    "billing-usage-send": {
        "task": "billing.tasks.usage_send_task",
        "schedule": crontab(),
    },
    # https://crontab.guru/#37_1_*_*_* : every day at 01:37 UTC (yesterday's usage against Stripe's meters)
    "billing-usage-reconcile": {
        "task": "billing.tasks.usage_reconcile_task",
        "schedule": crontab(minute=37, hour=1),
    },
    # https://crontab.guru/#13_*_*_*_* : every hour at minute 13 (past due beyond the grace period: restricted)
    "billing-past-due-restrict": {
        "task": "billing.tasks.past_due_restrict_task",
        "schedule": crontab(minute=13),
    },
    # https://crontab.guru/#43_*_*_*_* : every hour at minute 43 (spend caps, in case a check after usage was lost)
    "billing-spend-caps-sweep": {
        "task": "billing.tasks.spend_caps_sweep_task",
        "schedule": crontab(minute=43),
    },
    # https://crontab.guru/#3_6_*_*_* : every day at 06:03 UTC (each subscription fetched again from Stripe)
    "billing-subscriptions-sync": {
        "task": "billing.tasks.subscriptions_sync_task",
        "schedule": crontab(minute=3, hour=6),
    },
    # https://crontab.guru/#*_*_*_*_* : every minute (summaries of floods of failures, after their window)
    "audit-record-failure-summaries": {
        "task": "compliance.tasks.record_failure_summaries",
        "schedule": crontab(),
    },
}

# --- Channels ------------------------------------------------------------------
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # [!!] channels_redis waits on its Redis list up to 5 s at a time (brpop_timeout) and redis-py
        # gives up reading a socket after 5 s by default: with equal limits an idle websocket dies on a
        # TimeoutError. The socket's limit stays well above the wait.
        "CONFIG": {"hosts": [{"address": REDIS_CHANNELS_URL, "socket_timeout": 30}], "prefix": "jc-asgi"},
    }
}
# Every open websocket runs the organization access check again this often (and at once when a
# membership, a role or the person's sessions change): accounts/consumers.py.
WEBSOCKET_ACCESS_RECHECK_SECONDS = env("WEBSOCKET_ACCESS_RECHECK_SECONDS", default=60, cast=int)
# A provider's stream (Twilio's media stream) must present its single-use token within this many
# seconds of connecting, or it is closed with 4403: accounts/consumers.py ProviderStreamConsumer.
PROVIDER_STREAM_AUTH_TIMEOUT_SECONDS = env("PROVIDER_STREAM_AUTH_TIMEOUT_SECONDS", default=5, cast=float)
