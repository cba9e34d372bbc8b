"""Consent-side steps that need media or storage: the reference photo checked at grant."""
