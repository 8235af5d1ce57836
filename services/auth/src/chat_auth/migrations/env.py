from alembic import context
from chat_common.db import run_env

from chat_auth.models import Base

run_env(context, Base.metadata)  # type: ignore[arg-type]  # alembic's proxy module
