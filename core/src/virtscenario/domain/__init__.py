"""The libvirt domain: one module per section in ``sections/`` owns its setting keys, its
model records, its settings -> model step and its model -> XML step; ``build`` and
``render`` loop over them, ``generate`` runs one VM through every phase."""
