"""Errors raised by the privacy package."""


class PrivacyError(ValueError):
    """Base class of privacy errors."""


class BudgetExceededError(PrivacyError):
    """A round would take the site's cumulative epsilon past its budget."""


class LedgerCorruptedError(PrivacyError):
    """The ledger file fails its hash chain or cannot be parsed."""


class DeltaTooLargeError(PrivacyError):
    """The site's delta is above 1 / (number of patients) and the site did not allow it."""
