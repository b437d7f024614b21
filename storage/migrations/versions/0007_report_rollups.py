"""Reports that stay fast as the log grows: work done as rows are logged, not as a report is asked for.

- inquiries.hit (the measure of a question's first result, ranked 1), inquiries.step (funnel step: 1 a measure
  card, 2 a match), inquiries.question_group (the group of near-duplicate unanswered questions), and for a
  match inquiries.matched and inquiries.identities (the measures found applicable, the profile's identities);
- question_groups: the forms that founded those groups (storage.questions);
- daily_inquiries and daily_places: inquiries per UTC day by kind, measure, plan and hit, and by channel and
  district. The inquiry log adds to them in the transaction that writes the rows; a trigger takes deleted
  rows off (/forget) and deletes a question group with its last row, so they always add up to the rows.
- indexes: questions by group (both databases; SQLite's holds the text), and on SQLite the funnel's and the
  matches'. The SQLite-only facet, day and user indexes of 0003 are dropped: the daily tables replace them.

Existing rows are backfilled: hit, step and the daily tables in SQL; the question groups (with the inquiry log's
own grouper, in the order the questions were logged) and the matches in Python, with the log's own functions.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

from storage.inquiry_log import match_facts
from storage.questions import QuestionGrouper, form_digest, question_form

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
OLD_SQLITE_ONLY = {
    "ix_inquiries_report_facets": ["kind", "measure", "plan", "channel", "district", "created_at"],
    "ix_inquiries_report_days": [sa.text("substr(created_at, 1, 10)"), "kind", "created_at"],
    "ix_inquiries_report_users": ["user_pseudonym", "created_at", "kind", "answered", "measure"],
}

inquiries = sa.table(
    "inquiries",
    sa.column("id", sa.Integer),
    sa.column("created_at", sa.DateTime),
    sa.column("kind", sa.String),
    sa.column("measure", sa.Integer),
    sa.column("plan", sa.Integer),
    sa.column("channel", sa.String),
    sa.column("district", sa.String),
    sa.column("text", sa.Text),
    sa.column("answered", sa.Boolean),
    sa.column("results", sa.JSON),
    sa.column("hit", sa.Integer),
    sa.column("step", sa.Integer),
    sa.column("question_group", sa.Integer),
    sa.column("profile", sa.JSON),
    sa.column("matched", sa.Text),
    sa.column("identities", sa.Text),
)
question_groups = sa.table(
    "question_groups", sa.column("id", sa.Integer), sa.column("digest", sa.String), sa.column("form", sa.Text)
)

SQLITE_TRIGGER = """
CREATE TRIGGER inquiries_deleted AFTER DELETE ON inquiries
BEGIN
    UPDATE daily_inquiries SET inquiries = inquiries - 1
     WHERE day = substr(OLD.created_at, 1, 10) AND kind = OLD.kind AND measure = coalesce(OLD.measure, 0)
       AND "plan" = coalesce(OLD."plan", 0) AND hit = coalesce(OLD.hit, 0);
    UPDATE daily_places SET inquiries = inquiries - 1
     WHERE day = substr(OLD.created_at, 1, 10) AND channel = OLD.channel AND district = coalesce(OLD.district, '');
    DELETE FROM question_groups
     WHERE OLD.question_group IS NOT NULL AND id = OLD.question_group
       AND NOT EXISTS (SELECT 1 FROM inquiries WHERE question_group = OLD.question_group);
END
"""

# One statement's deleted rows at once; the daily rows in key order, as the inquiry log adds to them, so
# that a /forget and a log write never wait for each other in opposite orders.
POSTGRESQL_FUNCTION = """
CREATE FUNCTION inquiries_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT * FROM (
            SELECT (created_at AT TIME ZONE 'UTC')::date AS day, kind, coalesce(measure, 0) AS measure,
                   coalesce("plan", 0) AS "plan", coalesce(hit, 0) AS hit, count(*) AS n
              FROM gone GROUP BY 1, 2, 3, 4, 5
        ) g ORDER BY g.day, g.kind COLLATE "C", g.measure, g."plan", g.hit
    LOOP
        UPDATE daily_inquiries d SET inquiries = d.inquiries - r.n
         WHERE d.day = r.day AND d.kind = r.kind AND d.measure = r.measure AND d."plan" = r."plan" AND d.hit = r.hit;
    END LOOP;
    FOR r IN
        SELECT * FROM (
            SELECT (created_at AT TIME ZONE 'UTC')::date AS day, channel, coalesce(district, '') AS district,
                   count(*) AS n
              FROM gone GROUP BY 1, 2, 3
        ) g ORDER BY g.day, g.channel COLLATE "C", g.district COLLATE "C"
    LOOP
        UPDATE daily_places d SET inquiries = d.inquiries - r.n
         WHERE d.day = r.day AND d.channel = r.channel AND d.district = r.district;
    END LOOP;
    DELETE FROM question_groups g
     WHERE g.id IN (SELECT question_group FROM gone WHERE question_group IS NOT NULL)
       AND NOT EXISTS (SELECT 1 FROM inquiries i WHERE i.question_group = g.id);
    RETURN NULL;
END
$$
"""
POSTGRESQL_TRIGGER = """
CREATE TRIGGER inquiries_deleted AFTER DELETE ON inquiries REFERENCING OLD TABLE AS gone
FOR EACH STATEMENT EXECUTE FUNCTION inquiries_deleted()
"""


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.add_column("inquiries", sa.Column("hit", sa.Integer()))
    op.add_column("inquiries", sa.Column("step", sa.SmallInteger()))
    op.add_column("inquiries", sa.Column("question_group", sa.BigInteger()))
    op.add_column("inquiries", sa.Column("matched", sa.Text()))
    op.add_column("inquiries", sa.Column("identities", sa.Text()))
    op.create_table(
        "question_groups",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("digest", sa.String(32), nullable=False, unique=True),
        sa.Column("form", sa.Text(), nullable=False),
    )
    op.create_table(
        "daily_inquiries",
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("measure", sa.Integer(), primary_key=True),
        sa.Column("plan", sa.Integer(), primary_key=True),
        sa.Column("hit", sa.Integer(), primary_key=True),
        sa.Column("inquiries", sa.Integer(), nullable=False),
    )
    op.create_table(
        "daily_places",
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("channel", sa.String(16), primary_key=True),
        sa.Column("district", sa.String(16), primary_key=True),
        sa.Column("inquiries", sa.Integer(), nullable=False),
    )

    _backfill_columns()
    _backfill_groups()
    _backfill_matches()
    _backfill_daily(dialect)

    grouped = sa.text("question_group IS NOT NULL")
    if dialect == "sqlite":
        for name in OLD_SQLITE_ONLY:
            op.drop_index(name, table_name="inquiries")
        columns = ["question_group", "text", "created_at"]
        op.create_index("ix_inquiries_report_grouped", "inquiries", columns, sqlite_where=grouped)
        op.create_index("ix_inquiries_report_funnel", "inquiries", ["user_pseudonym", "created_at", "step"])
        matches = ["created_at", "matched", "identities"]
        op.create_index(
            "ix_inquiries_report_matches", "inquiries", matches, sqlite_where=sa.text("matched IS NOT NULL")
        )
        op.execute(SQLITE_TRIGGER)
    else:
        columns = ["question_group", "created_at"]
        op.create_index("ix_inquiries_grouped", "inquiries", columns, postgresql_where=grouped)
        op.execute(POSTGRESQL_FUNCTION)
        op.execute(POSTGRESQL_TRIGGER)


def _backfill_columns() -> None:
    i = inquiries
    first = i.c.results[(0, "measure")].as_integer()
    ranked_first = i.c.results[(0, "rank")].as_integer() == 1
    op.execute(
        i.update()
        .where(i.c.kind == "question", i.c.answered == sa.true(), ranked_first, first.is_not(None))
        .values(hit=first)
    )
    card = sa.or_(
        sa.and_(i.c.kind.in_(("measure", "deeplink")), i.c.measure.is_not(None)),
        sa.and_(i.c.kind == "question", i.c.answered == sa.true()),
    )
    op.execute(i.update().where(card).values(step=1))
    op.execute(i.update().where(i.c.kind == "match").values(step=2))


def _backfill_groups() -> None:
    """Group the unanswered questions logged so far, in the order they were logged."""
    bind = op.get_bind()
    i = inquiries
    unanswered = (
        sa.select(i.c.id, i.c.text)
        .where(i.c.kind == "question", i.c.answered == sa.false(), i.c.text.is_not(None))
        .order_by(i.c.id)
    )
    rows = [(row_id, question_form(text)) for row_id, text in bind.execute(unanswered).all()]
    if not rows:
        return
    grouper = QuestionGrouper()
    positions = grouper.place(form for _, form in rows)
    bind.execute(question_groups.insert(), [{"digest": form_digest(f), "form": f} for f in grouper.forms])
    ids = dict(bind.execute(sa.select(question_groups.c.digest, question_groups.c.id)).all())
    keys = [ids[form_digest(form)] for form in grouper.forms]
    statement = i.update().where(i.c.id == sa.bindparam("row")).values(question_group=sa.bindparam("group"))
    bind.execute(statement, [{"row": row_id, "group": keys[positions[form]]} for row_id, form in rows])


def _backfill_matches() -> None:
    bind = op.get_bind()
    i = inquiries
    matches = sa.select(i.c.id, i.c.answered, i.c.results, i.c.profile).where(i.c.kind == "match")
    updates = []
    for row_id, answered, results, profile in bind.execute(matches).all():
        matched, identities = match_facts("match", answered, results, profile)
        if matched is not None:
            updates.append({"row": row_id, "matched": matched, "identities": identities})
    if updates:
        statement = i.update().where(i.c.id == sa.bindparam("row"))
        bind.execute(statement.values(matched=sa.bindparam("matched"), identities=sa.bindparam("identities")), updates)


def _backfill_daily(dialect: str) -> None:
    i = inquiries
    if dialect == "sqlite":
        day = sa.func.substr(i.c.created_at, 1, 10)
    else:
        day = sa.cast(sa.func.timezone("UTC", i.c.created_at), sa.Date)
    coalesce = sa.func.coalesce
    keys = {
        "daily_inquiries": {
            "kind": i.c.kind,
            "measure": coalesce(i.c.measure, 0),
            "plan": coalesce(i.c.plan, 0),
            "hit": coalesce(i.c.hit, 0),
        },
        "daily_places": {"channel": i.c.channel, "district": coalesce(i.c.district, "")},
    }
    for name, columns in keys.items():
        table = sa.table(name, *(sa.column(c) for c in ["day", *columns, "inquiries"]))
        grouped = sa.select(day, *columns.values(), sa.func.count()).group_by(day, *columns.values())
        op.execute(table.insert().from_select(["day", *columns, "inquiries"], grouped))


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute("DROP TRIGGER inquiries_deleted")
        for name in ("ix_inquiries_report_matches", "ix_inquiries_report_funnel", "ix_inquiries_report_grouped"):
            op.drop_index(name, table_name="inquiries")
    else:
        op.execute("DROP TRIGGER inquiries_deleted ON inquiries")
        op.execute("DROP FUNCTION inquiries_deleted()")
        op.drop_index("ix_inquiries_grouped", table_name="inquiries")
    op.drop_table("daily_places")
    op.drop_table("daily_inquiries")
    op.drop_table("question_groups")
    with op.batch_alter_table("inquiries") as batch:
        batch.drop_column("identities")
        batch.drop_column("matched")
        batch.drop_column("question_group")
        batch.drop_column("step")
        batch.drop_column("hit")
    if dialect == "sqlite":  # after the batch, which rebuilds the table without expression indexes
        for name, columns in OLD_SQLITE_ONLY.items():
            op.create_index(name, "inquiries", columns)
