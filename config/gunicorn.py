"""Gunicorn settings for `manage.py serve` (issue 12): slow clients cannot starve the others.

- Threads, not one process per request: each worker serves `threads` requests at once.
- Request heads are read in the worker's event loop, not by a thread (the worker class in
  config/gunicorn_worker.py): a client sending its headers slowly (slowloris) holds a
  socket, not a thread, and is disconnected after RV_HTTP_READ_TIMEOUT seconds.
- Request line and header sizes are bounded.
In production put a reverse proxy that buffers requests in front (docs/security-web.md).
Every value can be set from the environment; command-line options override this file.
"""

import os

worker_class = "config.gunicorn_worker.HeadBufferingWorker"
workers = int(os.environ.get("RV_WEB_WORKERS", "2"))
threads = int(os.environ.get("RV_WEB_THREADS", "8"))
worker_connections = int(os.environ.get("RV_WEB_MAX_CONNECTIONS", "1000"))
timeout = int(os.environ.get("RV_WEB_WORKER_TIMEOUT", "60"))
graceful_timeout = 10
keepalive = 5
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190
accesslog = "-"
