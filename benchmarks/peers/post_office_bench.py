"""django-post-office: ``--emails`` copies of our email queued as ``Email`` rows in a scratch
PostgreSQL database, then ``send_queued_mail --processes N`` to the SMTP sink, with the
package's defaults otherwise (it logs each send in its ``Log`` table, as users get it).

    python benchmarks/peers/post_office_bench.py --smtp PORT --message FILE --processes 2
"""

from __future__ import annotations

import sys
import tempfile
import uuid
from pathlib import Path

from sample import arguments, parts
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url


def main() -> None:
    args = arguments("processes", 1)
    admin = create_engine(args.postgres, isolation_level="AUTOCOMMIT")
    name = f"remarket_bench_po_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        run(args, name)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def run(args: object, name: str) -> None:
    import django
    from django.conf import settings
    from django.core.management import call_command

    url = make_url(args.postgres)  # type: ignore[attr-defined]
    settings.configure(
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": name,
                "USER": url.username or "postgres",
                "PASSWORD": url.password or "",
                "HOST": url.host or "127.0.0.1",
                "PORT": url.port or 5432,
            }
        },
        INSTALLED_APPS=["django.contrib.contenttypes", "post_office"],
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=args.smtp,  # type: ignore[attr-defined]
        USE_TZ=True,
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
    )
    django.setup()
    call_command("migrate", verbosity=0)
    from post_office.models import PRIORITY, STATUS, Email

    subject, body, html = parts(args.message)  # type: ignore[attr-defined]
    Email.objects.bulk_create(
        [
            Email(
                from_email="shop@example.com",
                to=[f"po{n}@example.org"],
                subject=subject,
                message=body,
                html_message=html,
                status=STATUS.queued,
                priority=PRIORITY.medium,
            )
            for n in range(args.emails)  # type: ignore[attr-defined]
        ],
        batch_size=1000,
    )
    print("ready", file=sys.stderr, flush=True)
    sys.stdin.readline()
    with tempfile.TemporaryDirectory() as tmp:
        call_command(
            "send_queued_mail",
            processes=args.processes,  # type: ignore[attr-defined]
            lockfile=str(Path(tmp) / "post_office"),
        )
    from django.db import connections

    connections.close_all()


if __name__ == "__main__":
    main()
