# syntax=docker/dockerfile:1
#
# JagCall production image: one image for every role.
#   web     uvicorn on jagcall.asgi:application (the default command)
#   worker  docker-entrypoint.sh worker  -> celery -A jagcall worker -Q ...
#   beat    docker-entrypoint.sh beat    -> celery -A jagcall beat
# Configuration comes from the environment at run time (deploy/env.example);
# nothing secret is baked into the image. See docs/deploy.md.

# --- builder: the virtualenv with every Python dependency -------------------
FROM python:3.11-slim AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# A compiler for any dependency that ships no wheel for this platform.
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv
ENV PATH="/opt/venv/bin:${PATH}"

COPY requirements.txt /tmp/requirements.txt
RUN pip install --upgrade pip wheel \
 && pip install -r /tmp/requirements.txt

# --- runtime ------------------------------------------------------------------
FROM python:3.11-slim AS runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH="/opt/venv/bin:${PATH}" \
    PYTHONPATH=/app \
    DJANGO_SETTINGS_MODULE=jagcall.settings \
    JAGCALL_DATA_DIR=/var/lib/jagcall

# xmlsec1: XML signature verification for SAML single sign-on.
# tini: PID 1 that forwards signals and reaps child processes.
RUN apt-get update \
 && apt-get install -y --no-install-recommends xmlsec1 tini \
 && rm -rf /var/lib/apt/lists/*

# The application runs as an unprivileged user. Its home is the data
# directory (uploaded media, the beat schedule, the audit digests); the code
# stays root-owned and read-only to it.
RUN groupadd --system --gid 10001 jagcall \
 && useradd --system --uid 10001 --gid jagcall --home-dir /var/lib/jagcall \
        --no-create-home --shell /usr/sbin/nologin jagcall \
 && mkdir -p /var/lib/jagcall/media /var/lib/jagcall/audit-digests \
 && chown -R jagcall:jagcall /var/lib/jagcall

COPY --from=builder /opt/venv /opt/venv

WORKDIR /app
COPY . /app

# Static files are collected at build time and served by WhiteNoise. The
# values below exist only for this command so that the settings import with
# DEBUG off; settings open no connection when DATABASE_URL and REDIS_URL are
# set, and none of these values stays in the image's environment.
RUN chmod 0755 /app/deploy/docker-entrypoint.sh \
 && DEBUG=false \
    SECRET_KEY=build-only-placeholder-never-used-at-run-time \
    ALLOWED_HOSTS=localhost \
    DATABASE_URL=postgres://build:build@127.0.0.1:5432/build \
    REDIS_URL=redis://127.0.0.1:6379/0 \
    EMAIL_HOST=localhost \
    JAGCALL_MASTER_KEYSET="$(python -m jagcall.kernel.crypto.keygen master)" \
    JAGCALL_BLIND_INDEX_KEYS="$(python -m jagcall.kernel.crypto.keygen blind-index)" \
    AUDIT_DIGEST_SIGNING_KEY="$(python -c 'from compliance.keygen import new_private_key; print(new_private_key())')" \
    python manage.py collectstatic --noinput

USER 10001:10001

EXPOSE 8000

# Liveness of the web process. compose.yaml replaces it: /readyz for web, a
# Celery ping for the worker, none for beat.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/app/deploy/docker-entrypoint.sh", "healthcheck", "/healthz"]

ENTRYPOINT ["tini", "--", "/app/deploy/docker-entrypoint.sh"]

# One uvicorn process per container; scale with more containers. Proxy
# headers are trusted only from the nginx network (the "edge" network in
# compose.yaml); change both together.
CMD ["uvicorn", "jagcall.asgi:application", "--host", "0.0.0.0", "--port", "8000", "--proxy-headers", "--forwarded-allow-ips", "172.30.80.0/24", "--lifespan", "off", "--no-access-log", "--timeout-graceful-shutdown", "20"]
