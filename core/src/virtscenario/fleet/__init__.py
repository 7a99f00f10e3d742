"""Many hypervisors: an inventory of libvirt hosts reached through libvirt's own remote URIs.

Modules, one job each (nothing heavy is imported at module level):

- ``uri``: parse and check a libvirt connection URI (libvirt's rules, docs/uri.rst).
- ``inventory``: ``hosts.yaml`` and upstream virt-scenario's ``virthosts.yaml``.
- ``facts``: what one connection says about its host, as frozen records; the XML
  parsing is pure so recorded capabilities drive the tests.
- ``check``: every host at once, each with its own timeout.
- ``needs``: what a scenario requires of a host (the one place that resolves settings).
- ``place``: accept or reject every host with reasons, score the accepted ones.
- ``migrate``: can this VM move to that host, by libvirt's own rules.
- ``pool``: disk volumes through a host's storage pool API (remote hosts never run qemu-img here).
- ``remote``: ``create`` on a host reached through libvirt only: its volumes, its share directory, what
  the store records, and ``delete`` there.
- ``report``, ``commands``: text and JSON output, and the click commands (``register``).
"""
