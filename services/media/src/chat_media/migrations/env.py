from alembic import context
from chat_common.db import run_env
from chat_media.models import metadata

run_env(context, metadata)  # type: ignore[arg-type]  # alembic's proxy module
