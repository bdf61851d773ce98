"""Fixed public reference tables a site needs at run time: the formulary and its drug interactions."""
