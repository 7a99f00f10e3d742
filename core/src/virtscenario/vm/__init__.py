"""A VM on disk and in libvirt: its identity, its store directory, its images, its definition."""
