from tests.pg import keys_postgres, pg_url  # noqa: F401 - fixtures
