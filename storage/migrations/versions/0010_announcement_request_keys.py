"""A dashboard announcement's request key: the same Confirm form sent twice stores one announcement.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("announcements") as batch:
        batch.add_column(sa.Column("request_key", sa.String(64)))
        batch.create_index("ix_announcements_request_key", ["request_key"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("announcements") as batch:
        batch.drop_index("ix_announcements_request_key")
        batch.drop_column("request_key")
