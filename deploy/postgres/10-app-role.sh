#!/bin/sh
# Makes the application's database role (run by the db container on an empty
# volume; run it again by hand to change the role's password, see
# docs/deploy.md, Database roles):
#
#   docker compose exec db sh /docker-entrypoint-initdb.d/10-app-role.sh
#
# [!!] POSTGRES_APP_USER is a LOGIN role that owns nothing, is a member of no
# role, and may not create databases or roles. POSTGRES_USER (the owner)
# keeps the tables; migrations, run as the owner, grant this role what it may
# do (compliance/roles.py): it cannot change or delete audit rows, nor
# disable their triggers.
set -eu

: "${POSTGRES_APP_USER:?set POSTGRES_APP_USER in deploy/.env}"
: "${POSTGRES_APP_PASSWORD:?set POSTGRES_APP_PASSWORD in deploy/.env}"

if [ "$POSTGRES_APP_USER" = "${POSTGRES_USER:-postgres}" ]; then
    echo "POSTGRES_APP_USER must differ from POSTGRES_USER (the owner of the tables)" >&2
    exit 1
fi

psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" \
    -v app_user="$POSTGRES_APP_USER" -v app_password="$POSTGRES_APP_PASSWORD" <<'SQL'
SELECT format('CREATE ROLE %I', :'app_user')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'app_user') \gexec
SELECT format(
    'ALTER ROLE %I WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS PASSWORD %L',
    :'app_user', :'app_password') \gexec
SQL
