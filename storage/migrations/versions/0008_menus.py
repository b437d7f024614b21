"""The numbered choices a channel without buttons (WeChat) last showed a user, shared by all workers.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("menu", sa.JSON()))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("menu")
