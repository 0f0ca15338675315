"""rtc package."""
