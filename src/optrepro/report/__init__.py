"""Run directories -> pandas tables, figures in the papers' layouts and ``report.md`` (``optrepro-report``)."""
