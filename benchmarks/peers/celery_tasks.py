"""The Celery peer's task: render the email with Jinja (a template the size of ours, with a
greeting and the cart's three lines filled in), send it with smtplib over one connection per
worker process. Broker from BENCH_CELERY_BROKER, sink port from BENCH_SMTP_PORT, templates
from BENCH_TEMPLATES."""

from __future__ import annotations

import os
import smtplib
from email.message import EmailMessage

import jinja2
from celery import Celery

QUEUE = "remarket-bench-celery"
app = Celery("bench", broker=os.environ.get("BENCH_CELERY_BROKER", "redis://127.0.0.1:6379/8"))
app.conf.task_ignore_result = True
app.conf.broker_connection_retry_on_startup = True
_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(os.environ.get("BENCH_TEMPLATES", ".")), autoescape=True
)
_connection: list[smtplib.SMTP] = []


def _smtp() -> smtplib.SMTP:
    if not _connection:
        _connection.append(smtplib.SMTP("127.0.0.1", int(os.environ["BENCH_SMTP_PORT"])))
    return _connection[0]


@app.task(name="bench.send_email")  # type: ignore[misc]
def send_email(n: int) -> None:
    context = {
        "name": f"Shopper {n}",
        "items": [{"name": f"Product {i}", "price": "24.50"} for i in range(3)],
        "url": f"https://shop.example/checkout?c={n}",
    }
    message = EmailMessage()
    message["From"] = "shop@example.com"
    message["To"] = f"celery{n}@example.org"
    message["Subject"] = _templates.get_template("subject.txt").render(context)
    message.set_content(_templates.get_template("email.txt").render(context))
    message.add_alternative(_templates.get_template("email.html").render(context), subtype="html")
    _smtp().send_message(message)
