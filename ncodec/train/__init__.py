"""Training code, in one place: losses (`losses`), discriminators (`discriminators`), data sets
(`data`) and prior fitting (`priors`). The scripts under ``scripts/`` call these; no codec imports them."""
