#!/bin/sh
# Runs once, when the postgres volume is empty (docker-entrypoint-initdb.d).
# Each service owns its data: one role and one database per service.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v auth_pw="${AUTH_DB_PASSWORD:?}" -v messages_pw="${MESSAGES_DB_PASSWORD:?}" \
  -v presence_pw="${PRESENCE_DB_PASSWORD:?}" -v media_pw="${MEDIA_DB_PASSWORD:?}" <<'SQL'
CREATE ROLE chat_auth LOGIN PASSWORD :'auth_pw';
CREATE DATABASE chat_auth OWNER chat_auth;
REVOKE ALL ON DATABASE chat_auth FROM PUBLIC;

CREATE ROLE chat_messages LOGIN PASSWORD :'messages_pw';
CREATE DATABASE chat_messages OWNER chat_messages;
REVOKE ALL ON DATABASE chat_messages FROM PUBLIC;

CREATE ROLE chat_presence LOGIN PASSWORD :'presence_pw';
CREATE DATABASE chat_presence OWNER chat_presence;
REVOKE ALL ON DATABASE chat_presence FROM PUBLIC;

CREATE ROLE chat_media LOGIN PASSWORD :'media_pw';
CREATE DATABASE chat_media OWNER chat_media;
REVOKE ALL ON DATABASE chat_media FROM PUBLIC;
SQL
