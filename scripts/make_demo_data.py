"""Write data/demo/orders.csv: deterministic sample orders for the demo job (re-runnable)."""

from __future__ import annotations

import csv
import datetime as dt
import random
from pathlib import Path

ROWS = 5000
OUT = Path(__file__).resolve().parent.parent / "data" / "demo" / "orders.csv"


def main() -> None:
    rng = random.Random(42)
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    categories = ["books", "games", "garden", "kitchen", "music", "toys"]
    countries = ["DE", "FR", "NL", "PL", "US", "JP"]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["order_id", "order_date", "customer_id", "customer_email", "category",
                         "status", "quantity", "unit_price", "discount_rate", "country"])
        for order_id in range(1, ROWS + 1):
            when = start + dt.timedelta(minutes=rng.randrange(0, 60 * 24 * 30))
            status = rng.choices(["paid", "pending", "refunded"], weights=[80, 15, 5])[0]
            quantity = rng.choice([0, 1, 1, 1, 2, 2, 3, 5])
            writer.writerow([
                order_id,
                when.isoformat(timespec="seconds"),
                rng.randrange(1, 800),
                f"customer{rng.randrange(1, 800)}@example.com",
                rng.choice(categories),
                status,
                quantity,
                f"{rng.uniform(2, 120):.2f}",
                rng.choice(["0", "0", "0.05", "0.1"]),
                rng.choice(countries),
            ])


if __name__ == "__main__":
    main()
