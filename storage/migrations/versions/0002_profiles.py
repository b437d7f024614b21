"""Founder profiles on users; the district and profile beside each inquiry.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("profile", sa.JSON()))
        batch.add_column(sa.Column("profile_updated_at", sa.DateTime(timezone=True)))
    with op.batch_alter_table("inquiries") as batch:
        batch.add_column(sa.Column("district", sa.String(16)))
        batch.add_column(sa.Column("profile", sa.JSON()))


def downgrade() -> None:
    with op.batch_alter_table("inquiries") as batch:
        batch.drop_column("profile")
        batch.drop_column("district")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("profile_updated_at")
        batch.drop_column("profile")
