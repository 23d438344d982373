"""The production deployment files agree with the settings and SECURITY.md.

Covers Dockerfile, compose.yaml, deploy/env.example, deploy/nginx/jagcall.conf,
deploy/docker-entrypoint.sh and .dockerignore. No database is used: the files
are parsed, the entry point runs against stub commands, the settings are
imported in a subprocess with the example environment, and (when the nginx
binary is installed, Debian package nginx-light) `nginx -t` checks the
shipped configuration.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
ENV_EXAMPLE = ROOT / "deploy" / "env.example"
ENTRYPOINT = ROOT / "deploy" / "docker-entrypoint.sh"
NGINX_CONF = ROOT / "deploy" / "nginx" / "jagcall.conf"
SETTINGS = ROOT / "jagcall" / "settings"  # a package, one module per topic

APP_SERVICES = ("web", "worker", "beat")
SERVICES = ("web", "worker", "beat", "db", "redis", "nginx")
# What jagcall/settings/ refuses to start without when DEBUG is off.
REQUIRED_IN_PRODUCTION = {"SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL", "REDIS_URL", "EMAIL_HOST"}
TRUE_VALUES = {"1", "true", "yes", "on"}


# --- readers -------------------------------------------------------------------


@cache
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def service(name: str) -> dict:
    return compose()["services"][name]


def service_environment(name: str) -> dict[str, str]:
    raw = service(name).get("environment") or {}
    if isinstance(raw, list):
        pairs = (item.split("=", 1) if "=" in item else (item, "") for item in raw)
        return {key: value for key, value in pairs}
    return {key: "" if value is None else str(value) for key, value in raw.items()}


def service_env_files(name: str) -> list[str]:
    raw = service(name).get("env_file") or []
    if isinstance(raw, (str, dict)):
        raw = [raw]
    return [item["path"] if isinstance(item, dict) else item for item in raw]


def env_example() -> dict[str, str]:
    """Active NAME=value lines of deploy/env.example, in Compose's env_file format."""
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        assert sep, f"deploy/env.example: not NAME=value: {line!r}"
        values[name.strip()] = value.strip()
    return values


def env_example_documented() -> set[str]:
    """Every name in deploy/env.example, active or shown commented out ("# NAME=")."""
    return set(re.findall(r"^\s*(?:#\s*)?([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), flags=re.MULTILINE))


def settings_variables() -> tuple[set[str], set[str]]:
    """(every variable the settings package reads, the ones it requires when DEBUG is off)."""
    modules = sorted(SETTINGS.glob("*.py"))
    assert modules, f"no settings modules under {SETTINGS}"
    read, required = set(), set()
    for node in (node for module in modules for node in ast.walk(ast.parse(module.read_text()))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.args):
            continue
        first = node.args[0]
        if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
            continue
        if node.func.id in {"env", "is_set", "_require_in_production"}:
            read.add(first.value)
        if node.func.id == "_require_in_production":
            required.add(first.value)
    return read, required


@dataclass
class Instruction:
    keyword: str
    args: str
    stage: int


@cache
def dockerfile() -> tuple[Instruction, ...]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    instructions, stage = [], -1
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        instructions.append(Instruction(keyword, args.strip(), stage))
    return tuple(instructions)


def runtime_stage() -> list[Instruction]:
    last = max(i.stage for i in dockerfile())
    return [i for i in dockerfile() if i.stage == last]


def dockerfile_cmd() -> list[str]:
    cmds = [i for i in runtime_stage() if i.keyword == "CMD"]
    assert cmds, "the runtime stage has no CMD"
    return json.loads(cmds[-1].args)


# --- a small nginx configuration parser ------------------------------------------


@dataclass
class Directive:
    name: str
    args: list[str]
    block: list[Directive] | None = None

    def all(self, name: str) -> list[Directive]:
        return [d for d in (self.block or []) if d.name == name]

    def one(self, name: str) -> Directive:
        found = self.all(name)
        assert len(found) == 1, f"expected one {name!r} in {self.name} {self.args}, found {len(found)}"
        return found[0]

    def walk(self):
        for child in self.block or []:
            yield child
            yield from child.walk()


def _nginx_tokens(text: str):
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char.isspace():
            i += 1
        elif char == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif char in "{};":
            yield char
            i += 1
        elif char in "\"'":
            end = i + 1
            while text[end] != char:
                end += 2 if text[end] == "\\" else 1
            yield text[i + 1 : end]
            i = end + 1
        else:
            start = i
            while i < n and not text[i].isspace() and text[i] not in "{};":
                i += 1
            yield text[start:i]


def parse_nginx(text: str) -> Directive:
    tokens = list(_nginx_tokens(text))
    position = 0

    def block() -> list[Directive]:
        nonlocal position
        items: list[Directive] = []
        words: list[str] = []
        while position < len(tokens):
            token = tokens[position]
            position += 1
            if token == ";":
                items.append(Directive(words[0], words[1:]))
                words = []
            elif token == "{":
                items.append(Directive(words[0], words[1:], block()))
                words = []
            elif token == "}":
                assert not words, f"unterminated directive {words}"
                return items
            else:
                words.append(token)
        assert not words, f"unterminated directive {words}"
        return items

    return Directive("http", [], block())


@cache
def nginx() -> Directive:
    return parse_nginx(NGINX_CONF.read_text())


def nginx_server(port: str) -> Directive:
    servers = [s for s in nginx().all("server") if any(port in d.args[0] for d in s.all("listen"))]
    assert len(servers) == 1, f"expected one server listening on {port}"
    return servers[0]


def nginx_seconds(value: str) -> int:
    number, unit = re.fullmatch(r"(\d+)(ms|s|m|h|d)?", value).groups()
    return int(number) * {None: 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "ms": 0}[unit]


def proxy_headers(location: Directive) -> dict[str, str]:
    return {d.args[0].lower(): d.args[1] for d in location.all("proxy_set_header")}


# --- compose.yaml ----------------------------------------------------------------


def test_compose_defines_the_six_services():
    assert set(SERVICES) <= set(compose()["services"])


def test_web_worker_and_beat_run_one_image_built_from_this_repository():
    builds = [service(name).get("build") for name in APP_SERVICES]
    images = [service(name).get("image") for name in APP_SERVICES]
    assert builds[0], "web has no build section"
    assert all(build == builds[0] for build in builds), builds
    assert all(image == images[0] for image in images), images
    build = builds[0] if isinstance(builds[0], dict) else {"context": builds[0]}
    assert (ROOT / build.get("context", ".") / build.get("dockerfile", "Dockerfile")).resolve() == DOCKERFILE


def test_services_scale_without_fixed_names_or_host_ports():
    for name, definition in compose()["services"].items():
        assert "container_name" not in definition, f"{name} has a fixed container_name"
    for name in APP_SERVICES:
        assert not service(name).get("ports"), f"{name} publishes a host port"
    published = {str(port).split(":", 1)[0] for port in service("nginx").get("ports", [])}
    assert published == {"80", "443"}


def test_required_variables_reach_web_worker_and_beat():
    _, required_by_settings = settings_variables()
    required = REQUIRED_IN_PRODUCTION | required_by_settings
    example = env_example()
    for name in required:
        assert example.get(name), f"{name} has no value in deploy/env.example"
    for name in APP_SERVICES:
        env_files = service_env_files(name)
        assert "deploy/.env" in env_files, f"{name} does not read deploy/.env"
        provided = set(example) | set(service_environment(name))
        assert required <= provided, f"{name} lacks {sorted(required - provided)}"


def test_env_example_documents_every_variable_the_settings_read():
    read, _ = settings_variables()
    assert REQUIRED_IN_PRODUCTION <= read
    missing = read - env_example_documented()
    assert not missing, f"deploy/env.example does not mention {sorted(missing)}"


def test_env_example_holds_no_real_secret():
    example = env_example()
    for name, value in example.items():
        if re.search(r"SECRET_KEY|PASSWORD", name):
            assert value.startswith("replace-with-"), f"{name} in deploy/env.example looks like a real value"
    for name in ("DATABASE_URL", "REDIS_URL"):
        assert "replace-with-" in example[name]
    assert example["POSTGRES_APP_PASSWORD"] in example["DATABASE_URL"]
    assert example["REDIS_PASSWORD"] in example["REDIS_URL"]
    # The owner's password never sits in the env file every container reads.
    assert "POSTGRES_PASSWORD" not in example and "DATABASE_OWNER_URL" not in example


def test_only_the_migrate_service_holds_the_database_owner_role():
    """Web, worker and beat connect as the application role; the owner is given to migrate alone."""
    from urllib.parse import urlsplit

    example = env_example()
    app_user = urlsplit(example["DATABASE_URL"]).username
    assert app_user == example["POSTGRES_APP_USER"] != example["POSTGRES_USER"]
    migrate = service("migrate")
    assert migrate["command"] == ["migrate"] and migrate["restart"] == "no"
    owner = urlsplit(service_environment("migrate")["DATABASE_OWNER_URL"])
    assert owner.username == example["POSTGRES_USER"] and owner.path == "/" + example["POSTGRES_DB"]
    assert owner.password is None  # from the secret file
    password_file = service_environment("migrate")["DATABASE_OWNER_PASSWORD_FILE"]
    assert password_file == "/run/secrets/postgres_owner_password"
    assert service_environment("db")["POSTGRES_PASSWORD_FILE"] == password_file

    def secrets_of(name):
        return {m["source"] if isinstance(m, dict) else m for m in service(name).get("secrets", [])}

    assert {"postgres_owner_password"} <= secrets_of("migrate") and {"postgres_owner_password"} <= secrets_of("db")
    for name in APP_SERVICES:
        assert "postgres_owner_password" not in secrets_of(name), f"{name} gets the owner's password"
        assert not {"DATABASE_OWNER_URL", "DATABASE_OWNER_PASSWORD_FILE"} & set(service_environment(name))
    assert compose()["secrets"]["postgres_owner_password"]["file"].startswith("deploy/secrets/")
    assert service("web")["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    # The db container makes the application role on an empty volume.
    assert "./deploy/postgres:/docker-entrypoint-initdb.d:ro" in service("db")["volumes"]
    assert os.access(ROOT / "deploy" / "postgres" / "10-app-role.sh", os.X_OK)


def test_the_audit_digests_are_kept_in_a_volume_shared_by_web_and_worker():
    env = " ".join(i.args for i in runtime_stage() if i.keyword == "ENV")
    data_dir = re.search(r"\bJAGCALL_DATA_DIR=(\S+)", env).group(1)
    named = set(compose().get("volumes") or {})
    for name in ("web", "worker"):
        mounts = {v.split(":")[1]: v.split(":")[0] for v in service(name)["volumes"] if v.split(":")[0] in named}
        assert mounts.get(f"{data_dir}/audit-digests") == "auditdigests", f"{name} does not keep the digests"
    assert "mkdir -p /var/lib/jagcall/media /var/lib/jagcall/audit-digests" in " ".join(
        i.args for i in runtime_stage() if i.keyword == "RUN"
    )


def test_debug_is_never_true():
    for name in compose()["services"]:
        value = service_environment(name).get("DEBUG", "false")
        assert value.strip().lower() not in TRUE_VALUES, f"DEBUG={value} for {name}"
    assert env_example()["DEBUG"].lower() in {"0", "false", "no", "off"}
    for path in (DOCKERFILE, COMPOSE, ENV_EXAMPLE):
        active = "\n".join(line for line in path.read_text().splitlines() if not line.strip().startswith("#"))
        assert not re.search(r"\bDEBUG\s*[=:]\s*[\"']?(1|true|yes|on)\b", active, flags=re.IGNORECASE), path.name


def test_web_trusts_the_proxy_header_and_reports_readiness():
    env = service_environment("web")
    assert env.get("TRUST_X_FORWARDED_PROTO", "").lower() in TRUE_VALUES
    for name in ("worker", "beat"):
        assert service_environment(name).get("TRUST_X_FORWARDED_PROTO", "false").lower() not in TRUE_VALUES
    assert "/readyz" in " ".join(service("web")["healthcheck"]["test"])
    depends = service("web")["depends_on"]
    assert depends["db"]["condition"] == "service_healthy"
    assert depends["redis"]["condition"] == "service_healthy"


def test_worker_and_beat_run_their_roles():
    assert service("worker")["command"] == ["worker"]
    assert service("beat")["command"] == ["beat"]
    assert "command" not in service("web"), "web runs the image's default command (uvicorn)"


def test_database_and_redis_are_persistent_and_checked():
    db, redis = service("db"), service("redis")
    assert re.fullmatch(r"pgvector/pgvector:pg1[78](-\w+)?", db["image"])
    pg_target = "/var/lib/postgresql" if "pg18" in db["image"] else "/var/lib/postgresql/data"
    named = set(compose().get("volumes") or {})
    assert any(v.split(":")[0] in named and v.split(":")[1] == pg_target for v in db["volumes"]), db["volumes"]
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])

    assert re.fullmatch(r"redis:7(\.\d+)*(-\w+)?", redis["image"])
    command = " ".join(redis["command"]) if isinstance(redis["command"], list) else redis["command"]
    assert "--requirepass" in command and "REDIS_PASSWORD" in command
    assert "--appendonly yes" in command
    assert any(v.split(":")[0] in named and v.split(":")[1] == "/data" for v in redis["volumes"])
    assert "ping" in " ".join(redis["healthcheck"]["test"])
    assert "REDIS_PASSWORD" in env_example() and "deploy/.env" in service_env_files("redis")


def test_nginx_service_mounts_the_shipped_config_and_certificates():
    volumes = service("nginx")["volumes"]
    assert "./deploy/nginx:/etc/nginx/conf.d:ro" in volumes
    assert any(v.endswith(":/etc/nginx/certs:ro") for v in volumes)
    assert service("nginx")["image"].startswith("nginx:")


def test_proxy_headers_are_trusted_only_from_the_nginx_network():
    cmd = dockerfile_cmd()
    trusted = cmd[cmd.index("--forwarded-allow-ips") + 1]
    networks = compose()["networks"]
    shared = set(service("web")["networks"]) & set(service("nginx")["networks"])
    assert len(shared) == 1, f"web and nginx should share exactly one network, got {shared}"
    subnets = {c["subnet"] for c in networks[shared.pop()]["ipam"]["config"]}
    assert set(trusted.split(",")) == subnets
    assert "*" not in trusted


# --- settings with the example environment --------------------------------------


def _settings_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "jagcall.settings",
        "JAGCALL_DATA_DIR": str(tmp_path / "data"),
        **env_example(),
        **service_environment("web"),
    }
    # The keys an operator makes with jagcall.kernel.crypto.keygen (the example holds placeholders).
    from jagcall.kernel.crypto.keygen import blind_index_key, master_keyset_json

    master = tmp_path / "master_keyset.json"
    master.write_text(master_keyset_json())
    env["JAGCALL_MASTER_KEYSET_FILE"] = str(master)
    env["JAGCALL_BLIND_INDEX_KEYS"] = blind_index_key()
    from compliance.keygen import new_private_key

    env["AUDIT_DIGEST_SIGNING_KEY"] = new_private_key()
    env.update(overrides)
    return env


def test_settings_import_in_production_mode_with_the_example_environment(tmp_path):
    script = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        "print(json.dumps({'debug': s.DEBUG, 'pg': s.EMBEDDED_POSTGRES_STARTED, 'redis': s.EMBEDDED_REDIS_STARTED, "
        "'proxy': s.SECURE_PROXY_SSL_HEADER, 'hosts': s.ALLOWED_HOSTS}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=_settings_env(tmp_path),
        check=False,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["debug"] is False
    assert loaded["pg"] is False and loaded["redis"] is False
    assert loaded["proxy"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert loaded["hosts"] == env_example()["ALLOWED_HOSTS"].split(",")


def test_check_deploy_passes_with_a_real_key_and_rejects_the_placeholder(tmp_path):
    command = [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"]
    strong = _settings_env(tmp_path, SECRET_KEY="k" + os.urandom(48).hex())
    result = subprocess.run(command, cwd=ROOT, env=strong, check=False, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr

    placeholder = subprocess.run(
        command, cwd=ROOT, env=_settings_env(tmp_path), check=False, capture_output=True, text=True
    )
    assert placeholder.returncode != 0
    assert "security.W009" in placeholder.stdout + placeholder.stderr


# --- Dockerfile and .dockerignore -------------------------------------------------


def test_dockerfile_is_multi_stage_on_python_slim():
    froms = [i.args for i in dockerfile() if i.keyword == "FROM"]
    assert len(froms) > 1
    assert froms[-1].split()[0] == "python:3.11-slim"
    runtime = runtime_stage()
    assert any(i.keyword == "COPY" and i.args.startswith("--from=") for i in runtime)
    assert not any(i.keyword == "RUN" and "pip install" in i.args for i in runtime), "build dependencies in the builder"
    builder_runs = " ".join(i.args for i in dockerfile() if i.stage == 0 and i.keyword == "RUN")
    assert "-r /tmp/requirements.txt" in builder_runs or "requirements.txt" in builder_runs


def test_dockerfile_runs_as_a_non_root_user():
    users = [i for i in runtime_stage() if i.keyword == "USER"]
    assert users, "no USER in the runtime stage"
    user = users[-1].args.split(":")[0]
    assert user not in {"root", "0"}
    after_user = dockerfile().index(users[-1])
    assert not any(i.keyword == "USER" for i in dockerfile()[after_user + 1 :])


def test_dockerfile_healthcheck_and_default_command():
    checks = [i for i in runtime_stage() if i.keyword == "HEALTHCHECK"]
    assert checks and "/healthz" in checks[-1].args
    cmd = dockerfile_cmd()
    assert cmd[:2] == ["uvicorn", "jagcall.asgi:application"]
    assert cmd[cmd.index("--host") + 1] == "0.0.0.0"
    assert cmd[cmd.index("--port") + 1] == "8000"
    assert "--proxy-headers" in cmd and "--forwarded-allow-ips" in cmd
    entrypoint = [i for i in runtime_stage() if i.keyword == "ENTRYPOINT"]
    assert entrypoint and "/app/deploy/docker-entrypoint.sh" in json.loads(entrypoint[-1].args)


def test_dockerfile_installs_xmlsec1_in_the_runtime_image():
    runs = " ".join(i.args for i in runtime_stage() if i.keyword == "RUN")
    assert re.search(r"apt-get install [^&]*\bxmlsec1\b", runs)


def test_dockerfile_collects_static_with_build_only_values_and_bakes_no_secret():
    runs = [i.args for i in runtime_stage() if i.keyword == "RUN" and "collectstatic" in i.args]
    assert len(runs) == 1
    collect = runs[0]
    for name in REQUIRED_IN_PRODUCTION:
        assert re.search(rf"\b{name}=\S+", collect), f"collectstatic does not get a build-only {name}"
    assert not re.search(r"\bDEBUG=(1|true|yes|on)\b", collect, flags=re.IGNORECASE)
    secretish = re.compile(r"SECRET|PASSWORD|DATABASE_URL|REDIS_URL|EMAIL_HOST")
    for instruction in dockerfile():
        if instruction.keyword in {"ENV", "ARG"}:
            assert not secretish.search(instruction.args), f"{instruction.keyword} {instruction.args}"
    assert not any(i.keyword in {"COPY", "ADD"} and re.search(r"\.env\b|certs", i.args) for i in dockerfile())


def test_media_volume_is_the_media_root_of_the_image():
    env = " ".join(i.args for i in runtime_stage() if i.keyword == "ENV")
    data_dir = re.search(r"\bJAGCALL_DATA_DIR=(\S+)", env).group(1)
    named = set(compose().get("volumes") or {})
    for name in ("web", "worker"):
        mounts = {v.split(":")[1] for v in service(name)["volumes"] if v.split(":")[0] in named}
        assert f"{data_dir}/media" in mounts, f"{name} does not keep uploads in a volume"


def test_dockerignore_keeps_local_state_and_secrets_out_of_the_build():
    patterns = {line.strip().rstrip("/") for line in DOCKERIGNORE.read_text().splitlines()}
    for needed in (".git", ".venv", ".data", "staticfiles", "deploy/.env", "deploy/certs", ".env"):
        assert needed in patterns, f".dockerignore does not exclude {needed}"
    assert any("__pycache__" in p for p in patterns)


# --- deploy/docker-entrypoint.sh ---------------------------------------------------


def _stub(path: Path, body: str) -> None:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)


def run_entrypoint(tmp_path: Path, *args: str, **env: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    """Runs the entry point with python, uvicorn and celery replaced by stubs that log their calls."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    calls = tmp_path / "calls.log"
    calls.write_text("")
    _stub(
        bin_dir / "python",
        'printf "python %s\\n" "$*" >> "$CALLS"\n'
        '[ "${1:-}" = "-" ] && cat > /dev/null\n'
        'if [ -n "${FAIL_WHEN:-}" ]; then case " $* " in *" $FAIL_WHEN "*) exit 1 ;; esac; fi\n'
        "exit 0\n",
    )
    for name in ("uvicorn", "celery"):
        _stub(bin_dir / name, f'printf "exec {name} %s\\n" "$*" >> "$CALLS"\n')
    full_env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "CALLS": str(calls), **env}
    result = subprocess.run(
        ["sh", str(ENTRYPOINT), *args],
        env=full_env,
        check=False,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    return result, calls.read_text().splitlines()


KEY_CHECK = "python manage.py check --database default --fail-level ERROR"


def test_entrypoint_stops_when_the_master_keyset_does_not_match(tmp_path):
    for role in (dockerfile_cmd(), ["worker"], ["beat"]):
        result, calls = run_entrypoint(tmp_path, *role, FAIL_WHEN="--database")
        assert result.returncode != 0
        assert not any(call.startswith("exec ") for call in calls)


def test_entrypoint_web_checks_waits_then_serves_and_never_migrates(tmp_path):
    cmd = dockerfile_cmd()
    for value in ("1", "0", ""):  # RUN_MIGRATIONS is ignored: web has no owner credentials
        result, calls = run_entrypoint(tmp_path, *cmd, RUN_MIGRATIONS=value)
        assert result.returncode == 0, result.stderr
        assert calls[0] == "python manage.py check --deploy --fail-level WARNING"
        assert calls[1] == "python -"  # waits for PostgreSQL and Redis
        assert calls[2] == KEY_CHECK  # the master keyset opens the stored keys; the role cannot change the log
        assert calls[3] == "exec uvicorn " + " ".join(cmd[1:])
        assert len(calls) == 4


def test_entrypoint_migrate_waits_then_migrates_as_the_owner_and_exits(tmp_path):
    owner = "postgres://jagcall@db:5432/jagcall"
    result, calls = run_entrypoint(tmp_path, "migrate", DATABASE_OWNER_URL=owner)
    assert result.returncode == 0, result.stderr
    assert calls == ["python -", "python - python manage.py migrate --noinput"]  # waits, then under the lock
    failed, calls = run_entrypoint(tmp_path, "migrate", DATABASE_OWNER_URL=owner, FAIL_WHEN="migrate")
    assert failed.returncode != 0 and "migrations failed" in failed.stderr
    missing, calls = run_entrypoint(tmp_path, "migrate")
    assert missing.returncode != 0 and "DATABASE_OWNER_URL is not set" in missing.stderr
    assert not any("migrate" in call for call in calls)


def test_entrypoint_web_refuses_to_serve_when_the_deploy_check_fails(tmp_path):
    result, calls = run_entrypoint(tmp_path, *dockerfile_cmd(), RUN_MIGRATIONS="1", FAIL_WHEN="--deploy")
    assert result.returncode != 0
    assert not any(call.startswith("exec ") for call in calls)
    assert not any("migrate" in call for call in calls)


def test_entrypoint_stops_when_backing_services_stay_unreachable(tmp_path):
    result, calls = run_entrypoint(tmp_path, "worker", FAIL_WHEN="-")
    assert result.returncode != 0
    assert not any(call.startswith("exec ") for call in calls)


def test_entrypoint_worker_consumes_every_queue_and_never_migrates(tmp_path):
    from django.conf import settings

    result, calls = run_entrypoint(tmp_path, "worker", "--concurrency", "2", RUN_MIGRATIONS="1")
    assert result.returncode == 0, result.stderr
    assert calls[:-1] == ["python -", KEY_CHECK]
    worker = calls[-1].split()
    assert worker[:5] == ["exec", "celery", "-A", "jagcall", "worker"]
    queues = worker[worker.index("-Q") + 1].split(",")
    assert set(queues) == set(settings.CELERY_TASK_QUEUES_NAMES)
    assert worker[-2:] == ["--concurrency", "2"]


def test_entrypoint_beat_runs_celery_beat_and_never_migrates(tmp_path):
    result, calls = run_entrypoint(tmp_path, "beat", RUN_MIGRATIONS="1", JAGCALL_DATA_DIR="/var/lib/jagcall")
    assert result.returncode == 0, result.stderr
    assert calls[:-1] == ["python -", KEY_CHECK]
    beat = calls[-1].split()
    assert beat[:5] == ["exec", "celery", "-A", "jagcall", "beat"]
    assert beat[beat.index("--schedule") + 1] == "/var/lib/jagcall/celerybeat-schedule"


def test_entrypoint_runs_other_commands_as_given(tmp_path):
    result, calls = run_entrypoint(tmp_path, "python", "manage.py", "createsuperuser", RUN_MIGRATIONS="1")
    assert result.returncode == 0, result.stderr
    assert calls == ["python manage.py createsuperuser"]


def test_entrypoint_healthcheck_probes_the_given_path(tmp_path):
    result, calls = run_entrypoint(tmp_path, "healthcheck", "/readyz")
    assert result.returncode == 0, result.stderr
    assert calls == ["python - /readyz"]
    compose_check = service("web")["healthcheck"]["test"]
    assert compose_check[1:] == ["/app/deploy/docker-entrypoint.sh", "healthcheck", "/readyz"]


def test_entrypoint_is_executable_posix_shell():
    assert ENTRYPOINT.read_text().startswith("#!/bin/sh\n")
    assert os.access(ENTRYPOINT, os.X_OK)
    subprocess.run(["sh", "-n", str(ENTRYPOINT)], check=True)


# --- deploy/nginx/jagcall.conf -------------------------------------------------------


def test_nginx_offers_tls_1_3_only_with_mozilla_modern_settings():
    tls = nginx_server("443")
    protocols = [d.args for d in nginx().walk() if d.name == "ssl_protocols"]
    assert protocols == [["TLSv1.3"]]
    assert tls.one("ssl_protocols").args == ["TLSv1.3"]
    assert re.search(r"^\s*ssl_protocols TLSv1\.3;", NGINX_CONF.read_text(), flags=re.MULTILINE)
    active = "\n".join(line.split("#", 1)[0] for line in NGINX_CONF.read_text().splitlines())
    assert not re.search(r"TLSv1(\.[012])?\b(?!\.3)|SSLv", active)
    assert tls.one("ssl_session_timeout").args == ["1d"]
    assert tls.one("ssl_session_cache").args[0].startswith("shared:")
    assert tls.one("ssl_session_tickets").args == ["off"]
    assert tls.one("ssl_prefer_server_ciphers").args == ["off"]
    assert any(d.args[0].endswith("443") and "ssl" in d.args for d in tls.all("listen"))


def test_nginx_sends_hsts_on_every_response():
    tls = nginx_server("443")
    hsts = [d for d in tls.all("add_header") if d.args[0].lower() == "strict-transport-security"]
    assert len(hsts) == 1
    assert hsts[0].args[1:] == ["max-age=63072000; includeSubDomains; preload", "always"]
    # An add_header inside a location would stop the server-level one from being inherited.
    for location in tls.all("location"):
        assert not [d for d in location.walk() if d.name == "add_header"], location.args


def test_nginx_body_limit_matches_django():
    from django.conf import settings

    tls = nginx_server("443")
    assert tls.one("client_max_body_size").args == ["20m"]
    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE == 20 * 1024 * 1024


def test_nginx_lets_knowledge_uploads_through_up_to_djangos_own_limit_and_no_further():
    import re as regex

    from django.conf import settings

    tls = nginx_server("443")
    [uploads] = [loc for loc in tls.all("location") if loc.args and loc.args[0] == "~"]
    pattern = regex.compile(uploads.args[1])
    for path in ("/api/v1/knowledge-bases/4f1c/documents", "/o/acme-dental/knowledge/4f1c/upload/"):
        assert pattern.match(path), path
    for path in ("/api/v1/agents", "/o/acme-dental/calls/", "/admin/"):
        assert not pattern.match(path), path
    size = uploads.one("client_max_body_size").args[0]
    assert size.endswith("k") and int(size[:-1]) * 1024 == (
        settings.KNOWLEDGE_MAX_UPLOAD_BYTES + settings.KNOWLEDGE_UPLOAD_OVERHEAD_BYTES
    )
    [django_limit] = settings.REQUEST_BODY_LIMITS
    assert django_limit[1] == int(size[:-1]) * 1024 and django_limit[0].pattern == uploads.args[1]
    assert uploads.one("error_page").args == ["413", "=", "@upload_too_large"]
    [refusal] = [loc for loc in tls.all("location") if loc.args == ["@upload_too_large"]]
    assert refusal.one("return").args[0] == "413" and "20 MB" in refusal.one("return").args[1]
    assert proxy_headers(uploads) == proxy_headers([loc for loc in tls.all("location") if loc.args == ["/"]][0])


def test_nginx_proxies_websockets_with_upgrade():
    tls = nginx_server("443")
    [ws] = [loc for loc in tls.all("location") if loc.args == ["/ws/"]]
    assert ws.one("proxy_pass").args == ["http://jagcall_web"]
    assert ws.one("proxy_http_version").args == ["1.1"]
    headers = proxy_headers(ws)
    assert headers["upgrade"] == "$http_upgrade"
    assert headers["connection"] == "$connection_upgrade"
    [upgrade_map] = [m for m in nginx().all("map") if m.args == ["$http_upgrade", "$connection_upgrade"]]
    assert ["default", "upgrade"] in [[d.name, *d.args] for d in upgrade_map.block]
    assert nginx_seconds(ws.one("proxy_read_timeout").args[0]) >= 600


def test_nginx_forwards_client_scheme_host_and_request_id():
    tls = nginx_server("443")
    proxied = [loc for loc in tls.walk() if loc.name == "location" and loc.all("proxy_pass")]
    assert {tuple(loc.args) for loc in proxied} >= {("/",), ("/ws/",)}
    for location in proxied:
        headers = proxy_headers(location)
        assert headers.get("host") == "$host", location.args
        assert headers.get("x-forwarded-proto") in {"$scheme", "https"}, location.args
        assert headers.get("x-forwarded-for") in {"$remote_addr", "$proxy_add_x_forwarded_for"}, location.args
        assert headers.get("x-forwarded-host") == "$host", location.args
        assert headers.get("x-request-id") == "$request_id", location.args


def test_nginx_finds_every_web_container_through_docker_dns():
    resolvers = nginx().all("resolver")
    assert resolvers and resolvers[0].args[0] == "127.0.0.11"
    upstream = nginx().one("upstream")
    assert upstream.args == ["jagcall_web"]
    [server] = upstream.all("server")
    assert server.args[0] == "web:8000" and "resolve" in server.args[1:]
    assert upstream.all("zone"), "resolve needs a shared memory zone"
    targets = {d.args[0] for d in nginx().walk() if d.name == "proxy_pass"}
    assert targets == {"http://jagcall_web"}


def test_nginx_redirects_plain_http_except_its_own_health_answer():
    plain = nginx_server("80")
    locations = {tuple(loc.args): loc for loc in plain.all("location")}
    assert locations[("/",)].one("return").args == ["301", "https://$host$request_uri"]
    assert locations[("=", "/healthz")].one("return").args[0] == "200"
    assert not [d for d in plain.walk() if d.name == "proxy_pass"]


def test_nginx_serves_nothing_from_disk():
    assert not [d for d in nginx().walk() if d.name in {"root", "alias", "try_files", "autoindex"}]


# --- nginx -t on the shipped configuration -----------------------------------------


def _nginx_binary() -> str | None:
    found = shutil.which("nginx")
    if found:
        return found
    for candidate in ("/usr/sbin/nginx", "/usr/local/sbin/nginx"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


NGINX_BINARY = _nginx_binary()


@pytest.mark.skipif(
    NGINX_BINARY is None,
    reason="nginx binary not installed (Debian package nginx-light; `make test` installs it)",
)
def test_nginx_accepts_the_shipped_configuration(tmp_path):
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed; it makes the throwaway certificate")
    certs = tmp_path / "certs"
    certs.mkdir()
    subprocess.run(
        ["openssl", "req", "-x509", "-nodes", "-days", "1", "-newkey", "ec",
         "-pkeyopt", "ec_paramgen_curve:prime256v1", "-subj", "/CN=localhost",
         "-keyout", str(certs / "privkey.pem"), "-out", str(certs / "fullchain.pem")],
        check=True, capture_output=True,
    )  # fmt: skip

    info = subprocess.run([NGINX_BINARY, "-V"], check=False, capture_output=True, text=True).stderr
    version = tuple(int(part) for part in re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", info).groups())

    text = NGINX_CONF.read_text()
    substitutions = [
        ("/etc/nginx/certs/", f"{certs}/"),  # the throwaway certificate
        ("/var/log/nginx/", f"{tmp_path}/"),
        # No Docker DNS here, and "resolve" needs nginx 1.27.3: a fixed stub address.
        ("server web:8000 resolve;", "server 127.0.0.1:8000;"),
        # Unprivileged ports, so the check also runs without root.
        ("listen 80 default_server;", f"listen 127.0.0.1:{_free_port()} default_server;"),
        ("listen 443 ssl default_server;", f"listen 127.0.0.1:{_free_port()} ssl default_server;"),
    ]
    if version < (1, 25, 1):  # "http2 on" appeared in 1.25.1; nginx:stable has it
        substitutions.append(("http2 on;", ""))
    for old, new in substitutions:
        assert old in text, f"jagcall.conf no longer contains {old!r}; update this test"
        text = text.replace(old, new)
    (tmp_path / "jagcall.conf").write_text(text)

    temp_paths = "\n".join(
        f"    {module}_temp_path {tmp_path}/{module}_temp;"
        for module in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        if f"--without-http_{module}_module" not in info
    )
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\n"
        f"error_log {tmp_path}/error.log;\n"
        "events {}\n"
        "http {\n"
        f"    access_log {tmp_path}/access.log;\n"
        f"{temp_paths}\n"
        f"    include {tmp_path}/jagcall.conf;\n"
        "}\n"
    )
    result = subprocess.run(
        [NGINX_BINARY, "-t", "-p", f"{tmp_path}/", "-c", str(tmp_path / "nginx.conf"), "-e", "stderr"],
        check=False,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def test_master_keyset_reaches_web_worker_and_beat_as_a_secret_file():
    stack = compose()
    secret_file = stack["secrets"]["master_keyset"]["file"]
    assert secret_file.startswith("deploy/secrets/")
    for name in ("web", "worker", "beat"):
        mounts = stack["services"][name].get("secrets", [])
        targets = {m["target"] if isinstance(m, dict) else m for m in mounts}
        assert "jagcall_master_keyset" in targets, f"{name} does not get the master keyset"
    assert env_example()["JAGCALL_MASTER_KEYSET_FILE"] == "/run/secrets/jagcall_master_keyset"
    assert "JAGCALL_MASTER_KEYSET" not in env_example()  # never inline in the env file
