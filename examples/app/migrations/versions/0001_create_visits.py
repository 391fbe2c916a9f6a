"""create the visits table (expand-only: old code ignores it)

Revision ID: 0001
Revises:
"""
from alembic import op
import sqlalchemy as sa

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "visits",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("path", sa.String(length=200), nullable=False),
    )


def downgrade():
    op.drop_table("visits")
