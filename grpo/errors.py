"""Errors a user can act on; each message names what is wrong and how to fix it."""


class ConfigError(ValueError):
    """A config value is missing, unknown or out of range; the message says how to fix it."""


def check_field(ok: bool, name: str, value: object, fix: str) -> None:
    """Raise ``ConfigError`` naming config field ``name`` and the fix unless ``ok``."""
    if not ok:
        raise ConfigError(f"config field '{name}' = {value!r}: {fix}")


class NonFiniteGradient(ArithmeticError):
    """A loss gave a gradient norm that is NaN or infinite; raised before the optimizer step would use it."""
