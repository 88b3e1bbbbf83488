"""msi-doctor: checks that every link Marketo Sales Insight depends on holds, and repairs it.

It reads the CRM through tap-crm-msi's clients and mapping, and Marketo through
target-marketo-msi's client (the same limiter and daily call budget as the jobs), compares the
two per MSI object, and can re-send exactly the broken records through the targets.
"""

__version__ = "0.1.0"
