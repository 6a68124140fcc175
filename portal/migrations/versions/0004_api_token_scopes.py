"""API tokens get a scope, an optional expiry, a revocation time and a last-use time

Until now a token did everything its user could. Existing tokens keep exactly that: each gets the
widest scope its user's role allows today (admin → ``admin``, uploader → ``upload``, viewer and
anything else → ``read``). Were they given ``admin`` instead, a later promotion of the user would
silently widen every old token with it.

Revision ID: 0004_api_token_scopes
Revises: 0003_dead_letter_replays
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_api_token_scopes"
down_revision = "0003_dead_letter_replays"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("api_tokens", sa.Column("scope", sa.String(length=16), nullable=True))
    op.execute(
        "UPDATE api_tokens t SET scope = CASE u.role"
        " WHEN 'admin' THEN 'admin' WHEN 'uploader' THEN 'upload' ELSE 'read' END"
        " FROM users u WHERE u.id = t.user_id"
    )
    op.execute("UPDATE api_tokens SET scope = 'read' WHERE scope IS NULL")
    op.alter_column("api_tokens", "scope", nullable=False)
    op.create_check_constraint(
        "ck_api_tokens_scope", "api_tokens", "scope IN ('read', 'upload', 'admin')"
    )
    for column in ("expires_at", "revoked_at", "last_used_at"):
        op.add_column("api_tokens", sa.Column(column, sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_api_tokens_user_id", "api_tokens", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_api_tokens_user_id", table_name="api_tokens")
    # a revoked or expired token would come back to life without these columns
    op.execute("DELETE FROM api_tokens WHERE revoked_at IS NOT NULL OR expires_at IS NOT NULL")
    for column in ("last_used_at", "revoked_at", "expires_at"):
        op.drop_column("api_tokens", column)
    op.drop_constraint("ck_api_tokens_scope", "api_tokens", type_="check")
    op.drop_column("api_tokens", "scope")
