"""IVR flows from the site config: play, menu, collect, schedule, lookup, queue, callback, voicemail, survey, transfer (to come with the contact-center issue)."""
