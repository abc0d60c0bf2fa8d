"""Email templates: sandboxed Jinja + MJML, compiled once per language, rendered per email.

- ``renderer``: ``Renderer(templates_dir, languages=...)`` compiles ``<name>.mjml`` (YAML front
  matter with subject and preheader) and ``<name>.txt`` through layouts, partials and MJML
  (``layout``), and renders subject, preheader, HTML and text per email in the send-time
  sandboxes (``send_env``; the HTML in ASCII, ``ascii_html``; failures at file:line,
  ``failures``);
- ``locales``: gettext catalogs (``_locales/<lang>/LC_MESSAGES/messages.po``, compiled in
  memory) and the contact → workflow → English language fallback;
- ``filters``, ``dates``, ``utm``: money, plurals, dates and utm links per contact locale and
  time zone (Babel);
- ``lint``: ``remarket lint``, every template × language × sample, reported as file:line
  (``lint_render``, ``lint_static``, ``lint_findings``, ``copy_checks``);
- ``samples``: the sample contexts (``_samples/*.yaml``) lint and the preview render with;
- ``preview``: the live preview page (FastAPI router at ``/preview/``).

See ``templates/README.md`` for writing templates and translations.
"""
