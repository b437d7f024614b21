"""The measure a user last opened, and when: a vague follow-up right after it ("怎么申请") is about it.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("topic", sa.Integer()))
        batch.add_column(sa.Column("topic_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("topic_at")
        batch.drop_column("topic")
