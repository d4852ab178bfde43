"""Storage: the database (SQLite or PostgreSQL + pgvector), its tables and migrations, and the template search."""
