"""The customers scored by the served churn model: their features and their true outcome.

Each record has ``tenure`` (months), ``monthly_charges`` (EUR), ``plan``
(``month-to-month``, ``one_year``, ``two_year``), ``support_tickets`` (last 90 days),
``paperless`` (0/1) and ``payment_method``. Whether a customer churns follows a fixed logistic
law of these features (:func:`churn_probability`), so a model trained on
:func:`training_data` is good on the undrifted population. Drift (the ``model_drift`` fault)
shifts the *input* distribution: tenure by ``shift_sigma`` standard deviations and monthly
charges by half as many; the law of the outcome stays the same.

>>> rng = np.random.default_rng(1)
>>> sorted(customers(rng, 1)[0])
['monthly_charges', 'paperless', 'payment_method', 'plan', 'support_tickets', 'tenure']
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

TENURE_MEAN = 32.0
TENURE_SD = 12.0
CHARGES_MEAN = 70.0
CHARGES_SD = 20.0
PLANS = ("month-to-month", "one_year", "two_year")
PLAN_P = (0.55, 0.25, 0.20)
PAYMENT_METHODS = ("card", "bank_transfer", "paypal")
FEATURES = ("tenure", "monthly_charges", "plan", "support_tickets", "paperless", "payment_method")


def customers(rng: np.random.Generator, n: int, shift_sigma: float = 0.0) -> list[dict[str, Any]]:
    """``n`` feature records; ``shift_sigma`` > 0 moves tenure (and charges) upwards."""
    tenure = rng.normal(TENURE_MEAN + shift_sigma * TENURE_SD, TENURE_SD, n)
    charges = rng.normal(CHARGES_MEAN + 0.5 * shift_sigma * CHARGES_SD, CHARGES_SD, n)
    plans = rng.choice(len(PLANS), size=n, p=PLAN_P)
    tickets = rng.poisson(1.2, n)
    paperless = rng.random(n) < 0.6
    methods = rng.choice(len(PAYMENT_METHODS), size=n)
    return [
        {
            "tenure": int(max(0.0, round(tenure[i]))),
            "monthly_charges": round(float(min(max(charges[i], 18.0), 160.0)), 2),
            "plan": PLANS[int(plans[i])],
            "support_tickets": int(tickets[i]),
            "paperless": int(paperless[i]),
            "payment_method": PAYMENT_METHODS[int(methods[i])],
        }
        for i in range(n)
    ]


def churn_probability(record: dict[str, Any]) -> float:
    """The true probability that this customer churns.

    >>> round(churn_probability({"tenure": 2, "monthly_charges": 110, "plan": "month-to-month",
    ...     "support_tickets": 4, "paperless": 1, "payment_method": "card"}), 2)
    0.98
    """
    z = (
        -1.9
        - 0.06 * (record["tenure"] - TENURE_MEAN)
        + 0.025 * (record["monthly_charges"] - CHARGES_MEAN)
        + (1.3 if record["plan"] == "month-to-month" else 0.0)
        - (0.9 if record["plan"] == "two_year" else 0.0)
        + 0.35 * record["support_tickets"]
        + 0.2 * record["paperless"]
    )
    return 1.0 / (1.0 + math.exp(-z))


def outcomes(rng: np.random.Generator, records: list[dict[str, Any]]) -> list[int]:
    """Draw each customer's outcome (1 = churned) from :func:`churn_probability`."""
    draws = rng.random(len(records))
    return [int(draws[i] < churn_probability(r)) for i, r in enumerate(records)]


def training_data(n: int = 5000, seed: int = 0) -> tuple[list[dict[str, Any]], list[int]]:
    """``n`` undrifted records and their outcomes, to train and register a ``churn`` model."""
    rng = np.random.default_rng(seed)
    records = customers(rng, n)
    return records, outcomes(rng, records)
