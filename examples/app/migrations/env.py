"""Alembic environment for Flask-Migrate: migrate the app's SQLAlchemy metadata."""
from alembic import context
from flask import current_app

db = current_app.extensions["migrate"].db


def run_offline():
    context.configure(url=str(db.engine.url), target_metadata=db.metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online():
    with db.engine.connect() as connection:
        context.configure(connection=connection, target_metadata=db.metadata)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
