"""The outcome follow-up: which measure to ask a user about, and when.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("followup", sa.JSON()))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("followup")
