"""Celery: ``--emails`` tasks queued on Redis, then ``celery worker --concurrency N`` (prefork,
Celery's default pool) runs them: each renders the email with Jinja and sends it with
smtplib to the SMTP sink (``celery_tasks.py``).

    python benchmarks/peers/celery_bench.py --smtp PORT --message FILE --concurrency 8
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from types import FrameType

from sample import arguments, parts

HERE = Path(__file__).resolve().parent
GREETING = (
    "<p>Hi {{ name }},</p><ul>{% for item in items %}"
    "<li>{{ item.name }}: {{ item.price }}</li>{% endfor %}</ul>"
    '<p><a href="{{ url }}">Back to your cart</a></p>'
)


def write_templates(directory: Path, message: Path) -> None:
    """Our email's parts as Jinja templates: its text verbatim (in raw blocks), plus the
    personal lines rendered per email."""
    subject, body, html = parts(message)

    def raw(text: str) -> str:
        return "{% raw %}" + text + "{% endraw %}"

    (directory / "subject.txt").write_text(raw(subject) + " {{ name }}")
    (directory / "email.txt").write_text("Hi {{ name }},\n" + raw(body))
    (directory / "email.html").write_text(GREETING + raw(html))


def main() -> None:
    args = arguments("concurrency", 2)
    stopped = threading.Event()

    def stop(_signum: int, _frame: FrameType | None) -> None:
        stopped.set()

    signal.signal(signal.SIGTERM, stop)
    with tempfile.TemporaryDirectory() as tmp:
        write_templates(Path(tmp), args.message)
        env = {
            **os.environ,
            "BENCH_CELERY_BROKER": args.redis,
            "BENCH_SMTP_PORT": str(args.smtp),
            "BENCH_TEMPLATES": tmp,
            "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
        }
        os.environ.update(env)
        from celery_tasks import QUEUE, app, send_email

        app.conf.broker_url = args.redis
        with app.connection_for_write() as connection:
            connection.default_channel.queue_purge(QUEUE)
        for n in range(args.emails):
            send_email.apply_async((n,), queue=QUEUE)
        print("ready", file=sys.stderr, flush=True)
        sys.stdin.readline()
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "celery_tasks", "worker", "-Q", QUEUE,
             "-c", str(args.concurrency), "-P", "prefork", "-l", "WARNING",
             "--without-gossip", "--without-mingle", "--without-heartbeat"],
            env=env, cwd=HERE,
        )  # fmt: skip
        stopped.wait()
        worker.terminate()
        worker.wait(30)


if __name__ == "__main__":
    main()
