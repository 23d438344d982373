"""What every benchmark here shares: the scratch environment and the machine's facts.

``scratch_database()`` starts (or reuses, with --data-dir / JAGCALL_DATA_DIR)
embedded PostgreSQL + Redis, sets Django up on the test settings, creates a
scratch test database, and on exit drops it, stops the servers it started
and removes the temporary directory. Nothing existing is touched.

With JAGCALL_BENCH_TEMPLATE=1 and a data directory that outlives the run (the
smoke tests, tests/bench), the migrated database is kept once as a template
named by the migrations' digest, and the next run in that directory copies it
instead of migrating (20 s here).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import shutil
import statistics
import sys
import tempfile
from pathlib import Path


def median(values):
    return statistics.median(values)


def percentile(values, fraction: float):
    """The nearest-rank percentile of ``values`` (fraction in 0..1)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = max(0, min(len(ordered) - 1, int(round(fraction * len(ordered) + 0.5)) - 1))
    return ordered[index]


def section(title):
    print()
    print(f"== {title} " + "=" * max(0, 74 - len(title)))
    sys.stdout.flush()


def machine_facts(packages=("Django",)):
    facts = {
        "python": f"{platform.python_implementation()} {platform.python_version()} ({sys.executable})",
        "platform": platform.platform(),
        "nproc": f"{len(os.sched_getaffinity(0))} usable / {os.cpu_count()} online",
    }
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")), "?")
        flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), [])
        facts["cpu"] = f"{model}; AES-NI {'yes' if 'aes' in flags else 'no'}, PCLMULQDQ {'yes' if 'pclmulqdq' in flags else 'no'}"
    except OSError:
        pass
    try:
        meminfo = Path("/proc/meminfo").read_text().splitlines()[0].split()
        facts["memory"] = f"{int(meminfo[1]) // 1024} MB"
    except (OSError, IndexError, ValueError):
        pass
    from importlib import metadata

    versions = []
    for package in packages:
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{package} ?")
    facts["packages"] = ", ".join(versions)
    return facts


@contextlib.contextmanager
def scratch_database(data_dir_arg: str | None, *, packages=("Django",), keep: bool = False):
    """Yields the machine's facts (with the PostgreSQL version) inside a scratch test database.

    ``keep`` (with a data directory): reuse the database a previous run kept there, and keep it
    afterwards, so a benchmark's slow seeding is done once.
    """
    keep = keep and bool(data_dir_arg or os.environ.get("JAGCALL_DATA_DIR"))
    owned_dir = None
    if data_dir_arg:
        os.environ["JAGCALL_DATA_DIR"] = str(Path(data_dir_arg).resolve())
    elif not os.environ.get("JAGCALL_DATA_DIR"):
        owned_dir = tempfile.mkdtemp(prefix="jagcall-bench-", dir="/tmp")
        os.chmod(owned_dir, 0o755)  # the embedded PostgreSQL runs as its own user when we are root
        os.environ["JAGCALL_DATA_DIR"] = owned_dir
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jagcall.settings_test")
    data_dir = Path(os.environ["JAGCALL_DATA_DIR"])
    print(f"data directory: {data_dir}{' (temporary)' if owned_dir else ''}")

    settings_loaded = environment_ready = False
    old_name = None
    try:
        import django

        django.setup()
        settings_loaded = True
        from django.db import connection
        from django.test.utils import setup_test_environment

        setup_test_environment(debug=False)
        environment_ready = True
        old_name = connection.settings_dict["NAME"]
        template = _migrated_template() if not owned_dir and not keep else None
        created_from = _use_template(template)
        connection.creation.create_test_db(verbosity=0, keepdb=keep, serialize=False)
        if template and not created_from:
            _keep_as_template(template)
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            pg_version = cursor.fetchone()[0]
        facts = machine_facts(packages)
        facts["postgresql"] = f"{pg_version} (embedded, fsync off), database {connection.settings_dict['NAME']}"
        yield facts
    finally:
        _cleanup(settings_loaded, environment_ready, None if keep else old_name, data_dir, owned_dir)


def _migrated_template() -> str | None:
    """The template's name for this checkout's migrations, when JAGCALL_BENCH_TEMPLATE asks for one."""
    if os.environ.get("JAGCALL_BENCH_TEMPLATE", "").lower() not in ("1", "true", "yes"):
        return None
    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for path in sorted(root.glob("**/migrations/*.py")):
        if ".venv" not in path.parts:
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return f"jagcall_bench_template_{digest.hexdigest()[:16]}"


def _migration_connection():
    from django.conf import settings
    from django.db import connections

    return connections[getattr(settings, "MIGRATION_DATABASE", "default")]


def _use_template(template: str | None) -> bool:
    """Point the scratch database's creation at ``template`` when it exists (migrate then finds nothing to do)."""
    if not template:
        return False
    owner = _migration_connection()
    with owner._nodb_cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [template])
        found = cursor.fetchone() is not None
    if found:
        owner.settings_dict.setdefault("TEST", {})["TEMPLATE"] = template
    return found


def _keep_as_template(template: str) -> None:
    """Copy the freshly migrated scratch database to ``template`` for the next run (no session may be open on it)."""
    from django.db import connection, connections

    connections.close_all()
    owner = _migration_connection()
    quote = owner.ops.quote_name
    with owner._nodb_cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {quote(template)} TEMPLATE {quote(connection.settings_dict['NAME'])}")


def _cleanup(settings_loaded, environment_ready, old_name, data_dir: Path, owned_dir):
    started_pg = started_redis = bool(owned_dir)
    if settings_loaded:
        from django.conf import settings
        from django.db import connection, connections

        started_pg = started_pg or getattr(settings, "EMBEDDED_POSTGRES_STARTED", False)
        started_redis = started_redis or getattr(settings, "EMBEDDED_REDIS_STARTED", False)
        try:
            if old_name is not None and connection.settings_dict["NAME"] != old_name:
                connections.close_all()
                connection.creation.destroy_test_db(old_name, verbosity=0)
        except Exception as exc:  # the servers must still be stopped
            print(f"could not drop the scratch database: {exc}", file=sys.stderr)
        if environment_ready:
            from django.test.utils import teardown_test_environment

            teardown_test_environment()
        connections.close_all()
    from jagcall.kernel.embedded import EmbeddedPostgres, EmbeddedRedis

    if started_redis:
        EmbeddedRedis(data_dir / "redis").stop()
    if started_pg:
        EmbeddedPostgres(data_dir / "pg").stop()
    if owned_dir:
        shutil.rmtree(owned_dir, ignore_errors=True)
        print(f"stopped the embedded servers and removed {owned_dir}")
    elif started_pg or started_redis:
        print(f"stopped the embedded servers this run started under {data_dir}")
