"""The worker compiles every template its workflows send before it takes work."""

from __future__ import annotations

import shutil
from pathlib import Path

from remarket_mailer.bootstrap import build_app
from remarket_mailer.config import load_settings
from remarket_mailer.entrypoints.worker import warm_templates
from remarket_mailer.rendering.renderer import Renderer

ROOT = Path(__file__).resolve().parents[2]


def test_worker_warms_every_template_in_every_language(tmp_path: Path) -> None:
    settings = load_settings(
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
        broker_url="stub://",
        provider_url="memory://",
        workflows_dir=ROOT / "workflows",
        templates_dir=ROOT / "templates",
        secret_key="test-secret-key-0123456789-0123456789",
    )
    app = build_app(settings)
    try:
        names = {s.template for w in app.workflows.workflows.values() for s in w.steps}
        assert warm_templates(app) == len(names) * len(app.renderer.languages)
        assert app.delivery.renderer is app.renderer
        for name in names:
            for language in app.renderer.languages:
                # Compiled already: the cache hands back the very same object.
                assert app.renderer.compiled(name, language) is app.renderer.compiled(
                    name, language
                )
        assert len(app.renderer._compiled) == len(names) * len(app.renderer.languages)
    finally:
        app.close()


def test_a_broken_template_is_reported_not_raised(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", templates)
    (templates / "win_back" / "miss_you.mjml").write_text(
        "---\nsubject: hi\n---\n<mjml><mj-body>{% if %}</mj-body></mjml>", encoding="utf-8"
    )
    renderer = Renderer(templates)
    failed = renderer.warm(["win_back/miss_you", "win_back/last_offer"])
    assert list(failed) == ["win_back/miss_you [en]"]
    assert "syntax error" in str(failed["win_back/miss_you [en]"])
    assert renderer.compiled("win_back/last_offer") is not None
