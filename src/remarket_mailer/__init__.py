"""remarket-mailer: email remarketing automation worker."""

__version__ = "0.1.0"
