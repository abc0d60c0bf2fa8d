"""Shop integrations: turn Shopify and WooCommerce webhooks into our events.

Each module (:mod:`.shopify`, :mod:`.woocommerce`) offers the same two calls, used in order::

    if not module.verify_signature(raw_body, headers.get(module.SIGNATURE_HEADER), secrets):
        ...  # answer 401
    events = module.map_webhook(topic, json.loads(raw_body), headers)
    # each dict passes remarket_mailer.schemas.parse_event; ingest them like API events

WooCommerce also sends an unsigned form-encoded ping when a webhook is saved: check
:func:`.woocommerce.is_woocommerce_ping` before the signature and answer it with a 200.

Mapping is pure: the same delivery always gives the same event ids and bodies, so a
redelivered webhook is a no-op downstream. A payload that lacks what its topic requires raises
:class:`remarket_mailer.errors.ValidationError`.
"""
