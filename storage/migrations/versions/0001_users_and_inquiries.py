"""Users and the inquiry log.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("pseudonym", sa.String(64), nullable=False, unique=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("lang", sa.String(8), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "inquiries",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("user_pseudonym", sa.String(64), nullable=False),
        sa.Column("lang", sa.String(8), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("measure", sa.Integer()),
        sa.Column("plan", sa.Integer()),
        sa.Column("text", sa.Text()),
        sa.Column("answered", sa.Boolean()),
        sa.Column("results", sa.JSON()),
    )
    op.create_index("ix_inquiries_created_at", "inquiries", ["created_at"])
    op.create_index("ix_inquiries_user", "inquiries", ["user_pseudonym"])
    op.create_index("ix_inquiries_measure_created", "inquiries", ["measure", "created_at"])


def downgrade() -> None:
    op.drop_table("inquiries")
    op.drop_table("users")
