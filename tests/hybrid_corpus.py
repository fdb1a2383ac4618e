"""The hybrid search corpus: exact codes and paraphrases (tests/backends/suite/test_hybrid.py,
tests/backends/pgvector/test_hybrid_pgvector.py, docs/search.md "Hybrid").

For :data:`CODE_QUERY` the real model (all-MiniLM-L6-v2) ranks two start-up faults with
look-alike codes (``k02`` E-4417, ``k03`` E-7441) above :data:`CODE_ROW`, the row that has
the code; the full-text side finds that row first, and so does hybrid.
"""

CORPUS = [
    ("k01", "support", "E-4471: the partition table is damaged; restore it from the recovery drive."),
    ("k02", "support", "Startup fault E-4417: the loader cannot find the kernel image."),
    ("k03", "support", "At power-up the machine shows fault E-7441 and freezes."),
    ("k04", "support", "The notebook fails to power on and shows a fault number on a black screen."),
    ("k05", "support", "If the computer will not switch on, check the power cable and the battery first."),
    ("k06", "support", "Fault E-1447 while booting: the fan is blocked, so the system halts to avoid overheating."),
    ("k07", "billing", "Invoice INV-2291 was charged twice; the duplicate payment is refunded within five days."),
    ("k08", "billing", "A duplicate charge on your card is refunded automatically within a week."),
    ("k09", "billing", "Invoice INV-9122 covers the annual plan paid in March."),
    ("k10", "network", "Router code R-17 means the cable modem lost its upstream signal."),
    ("k11", "network", "When the internet connection drops, restart the modem and the router."),
    ("k12", "network", "Router code R-71 is shown while the firmware update is installing."),
    ("k13", "billing", "A spelling error in the billing address delays the invoice."),
    ("k14", "billing", "The startup plan is billed monthly and can be cancelled at any time."),
    ("k15", "sales", "The laptop bag you ordered ships next week."),
    ("k16", "sales", "Every laptop sold this month comes with a second charger."),
    ("k17", "billing", "An error in the tax rate was corrected on the next invoice."),
    ("k18", "sales", "Startup founders get a discount on the team plan."),
    ("k19", "general", "Our office is closed on public holidays."),
    ("k20", "general", "Rounding error: totals may differ by one cent from the sum of the lines."),
]
CODE_QUERY = "error E-4471 when the computer starts"
CODE_ROW = "k01"
