"""Webhooks: the sender that drains a job store's webhook outbox (the outboxes are app.jobs.sqlite_outbox and
app.jobs.redis_outbox; the URL check of a create is app.api.webhooks)."""
