"""The field's one-class protocols on MNIST: each digit in turn is the one normal class
(one-vs-rest, Ruff et al. 2018 and most papers) or the one anomalous class
(one-vs-rest-anomalous, RaPP and GANomaly). A protocol and a digit define a split's
`normal_digits`; a split with one or nine normal digits is that protocol's run."""

from __future__ import annotations

DIGITS = tuple(range(10))
ONE_VS_REST = "one-vs-rest"
ONE_VS_REST_ANOMALOUS = "one-vs-rest-anomalous"
PROTOCOLS = (ONE_VS_REST, ONE_VS_REST_ANOMALOUS)


def normal_digits(protocol: str, digit: int) -> list[int]:
    """The normal digits of `protocol`'s run for `digit`."""
    if protocol == ONE_VS_REST:
        return [digit]
    return [d for d in DIGITS if d != digit]


def protocol_of(normal: list[int]) -> tuple[str, int] | None:
    """(protocol, digit) when `normal` is one protocol's run, else None."""
    chosen = sorted(set(normal))
    if len(chosen) == 1:
        return ONE_VS_REST, chosen[0]
    if len(chosen) == len(DIGITS) - 1:
        return ONE_VS_REST_ANOMALOUS, next(d for d in DIGITS if d not in chosen)
    return None
