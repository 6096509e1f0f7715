"""Persistence: experiments, trials and observation rows (SQLite, PostgreSQL, MySQL).

Only this package (and ``katib.backends``) imports SQLAlchemy.
"""

from katib.store.engine import DB_URL_ENV, default_url
from katib.store.store import DEFAULT_NAMESPACE, EXPERIMENT_LABEL, Store

__all__ = ["Store", "default_url", "DB_URL_ENV", "DEFAULT_NAMESPACE", "EXPERIMENT_LABEL"]
