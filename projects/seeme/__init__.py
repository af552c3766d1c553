"""A SeeMe.ai SDK-compatible API at /api/v1/ (docs/seeme.md): datasets, versions, labels, splits and items mapped
onto Sightline's projects, labels, images and annotations, so that a script's work shows in the web app."""
