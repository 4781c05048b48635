"""The team ledger: rows shipped to PostgreSQL, the team budget, and the team report."""
