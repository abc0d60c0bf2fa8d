"""The send-time Jinja environments: sandboxed and immutable, one per language and part
(HTML autoescaped, text not), whose Babel filters default to that language and whose
translations come from its catalog.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jinja2 import DictLoader, StrictUndefined, Template, pass_context, pass_eval_context
from jinja2.nodes import EvalContext
from jinja2.runtime import Context
from markupsafe import Markup

from remarket_mailer.rendering import dates, filters
from remarket_mailer.rendering.locales import SOURCE_LOCALE, LocaleCatalog
from remarket_mailer.rendering.utm import utm_from_context
from remarket_mailer.sandbox import BoundedSandbox, join_bounded

_DICT_ATTRIBUTES = frozenset(dir(dict))
PLURAL_FILTER = "_translated_plural"
"""The filter a folded ``{% trans count=... %}{% pluralize %}`` calls (``fold_translations``)."""


class TemplateSandbox(BoundedSandbox):
    """Jinja's sandbox, immutable (a template cannot ``shop.update(...)`` the dicts every email
    shares), with the growth limits of ``remarket_mailer.sandbox`` (``'x' * n``,
    ``'a'|center(n)``, ``n ** m``...) so a template cannot exhaust the worker's memory."""

    language: str = SOURCE_LOCALE
    translations: Any = None

    def getattr(self, obj: Any, attribute: str) -> Any:
        # ``contact.first_name`` on a plain dict: Jinja tries the attribute first and pays for
        # an AttributeError on every lookup. A dict's only attributes are dict's methods, so
        # for other names the item is the same answer, found without the exception.
        if type(obj) is dict and attribute not in _DICT_ATTRIBUTES:
            try:
                return obj[attribute]
            except KeyError:
                return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)


@dataclass(frozen=True, slots=True)
class Runtime:
    """The send-time environments of one language."""

    html: TemplateSandbox
    text: TemplateSandbox


def runtime(language: str, catalog: LocaleCatalog | None) -> Runtime:
    """The HTML and text environments of ``language`` (``catalog`` None: English)."""
    return Runtime(
        html=runtime_env(True, language, catalog), text=runtime_env(False, language, catalog)
    )


def runtime_env(autoescape: bool, language: str, catalog: LocaleCatalog | None) -> TemplateSandbox:
    """A send-time environment for one language: its filters default to that language when
    the template does not name a locale (or names none, as for a contact without one)."""
    env = TemplateSandbox(
        autoescape=autoescape,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
        # Send-time templates include nothing: an empty loader turns {% include '/etc/passwd' %}
        # into TemplateNotFound instead of reading the file.
        loader=DictLoader({}),
    )
    env.policies["ext.i18n.trimmed"] = True
    translations: Any = catalog.translations if catalog is not None else _NullTranslations()
    env.language = language
    env.translations = translations
    # The i18n extension adds this method to the environment at run time. Literal msgids are
    # translated when a template is compiled (fold_translations); these serve the rest.
    env.install_gettext_translations(translations, newstyle=True)  # type: ignore[attr-defined]
    env.filters.update(_language_filters(language))
    env.filters[PLURAL_FILTER] = _translated_plural(translations)
    return env


def _translated_plural(translations: Any) -> Callable[..., str]:
    @pass_eval_context
    def translated_plural(
        eval_ctx: EvalContext,
        count: Any,
        singular: str,
        plural_form: str,
        variables: dict[str, Any],
        names: tuple[str, ...],
    ) -> str:
        # What a folded {% trans count=... %}{% pluralize %} runs (fold_translations).
        form = str(translations.ngettext(singular, plural_form, count))
        text = Markup(form) if eval_ctx.autoescape else form
        return text % {**variables, **dict.fromkeys(names, count)}

    return translated_plural


def _language_filters(language: str) -> dict[str, Callable[..., str]]:
    """The Babel filters with ``language`` as the locale a template does not name."""

    def money(amount: Any, currency: str, locale: str | None = None) -> str:
        return filters.money(amount, currency, locale or language)

    def number(amount: Any, locale: str | None = None) -> str:
        return filters.number(amount, locale or language)

    def date(
        moment: Any, locale: str | None = None, timezone: str | None = None, format: str = "medium"
    ) -> str:
        return dates.date(moment, locale or language, timezone, format)

    def datetime_(
        moment: Any, locale: str | None = None, timezone: str | None = None, format: str = "medium"
    ) -> str:
        return dates.datetime_(moment, locale or language, timezone, format)

    def plural(
        count: Any,
        one: str,
        other: str,
        *,
        zero: str | None = None,
        two: str | None = None,
        few: str | None = None,
        many: str | None = None,
        locale: str | None = None,
    ) -> str:
        return filters.plural(
            count, one, other, zero=zero, two=two, few=few, many=many, locale=locale or language
        )

    @pass_context
    def utm(
        context: Context, url: Any, campaign: str | None = None, content: str | None = None
    ) -> str:
        # get_all(): the template's data as one dict (no copy unless it {% set %}s names);
        # Context.get resolves through four Python calls per lookup.
        return utm_from_context(context.get_all(), str(url), campaign, content)

    return {
        "money": money,
        "number": number,
        "date": date,
        "datetime": datetime_,
        "plural": plural,
        "utm": utm,
    }


class _NullTranslations:
    """English: msgids are the English text, with the English plural rule."""

    @staticmethod
    def gettext(message: str) -> str:
        return message

    @staticmethod
    def ngettext(singular: str, plural: str, n: int) -> str:
        return singular if n == 1 else plural

    @staticmethod
    def pgettext(context: str, message: str) -> str:
        return message

    @staticmethod
    def npgettext(context: str, singular: str, plural: str, n: int) -> str:
        return singular if n == 1 else plural


def run(template: Template, data: dict[str, Any]) -> str:
    """``template.render(data)`` without copying ``data``: templates cannot change it (their
    ``{% set %}`` goes to the context's own variables)."""
    context = template.new_context(data, shared=True)
    try:
        return join_bounded(template.root_render_func(context))
    except Exception:
        template.environment.handle_exception()  # re-raises, with template lines in the traceback
