"""SQL plumbing shared by every SQL-backed part: engines, table shapes, migrations."""
