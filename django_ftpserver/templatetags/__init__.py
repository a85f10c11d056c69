"""Template filters of the admin pages (the live sessions page)."""
