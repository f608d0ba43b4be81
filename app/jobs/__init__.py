"""Jobs: the store (SQLite by default), the files of each job, and the workers that run them."""
