"""Shared by every test package. Being here puts ``tests/`` on ``sys.path`` (pytest's
rootdir-relative imports), so that shared helpers such as ``pg`` (the PostgreSQL test server)
import as plain modules from any package of tests."""
