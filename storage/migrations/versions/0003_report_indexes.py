"""Indexes for the demand reports (storage/reports.py).

On both databases, (kind, answered, created_at) finds the question and match rows of a period.
SQLite has no hash aggregation: it groups by sorting every row into a temporary B-tree, about 1 µs a row.
Its three extra indexes hold each whole-log GROUP BY in index order, so the report streams through a
covering index instead (1,000,000 rows: from about 3 s to about 0.5 s). PostgreSQL hash-aggregates a
sequential scan and does not need them.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SQLITE_ONLY = {
    "ix_inquiries_report_facets": ["kind", "measure", "plan", "channel", "district", "created_at"],
    "ix_inquiries_report_days": [sa.text("substr(created_at, 1, 10)"), "kind", "created_at"],
    "ix_inquiries_report_users": ["user_pseudonym", "created_at", "kind", "answered", "measure"],
}


def upgrade() -> None:
    op.create_index("ix_inquiries_kind_answered_created", "inquiries", ["kind", "answered", "created_at"])
    if op.get_bind().dialect.name == "sqlite":
        for name, columns in SQLITE_ONLY.items():
            op.create_index(name, "inquiries", columns)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in reversed(SQLITE_ONLY):
            op.drop_index(name, table_name="inquiries")
    op.drop_index("ix_inquiries_kind_answered_created", table_name="inquiries")
