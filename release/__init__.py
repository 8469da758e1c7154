"""The release: one offline Debian package per target, built by ``make release`` (see docs/jetson.md).

``targets`` says what each package is for, ``lock`` resolves the runtime dependencies per target
and Python into hash-pinned lock files (``release/locks/``, committed; ``make lock``), ``wheelhouse``
downloads exactly those wheels (cached under ``.cache/wheelhouse/``, keyed by the lock's hash),
``deb`` assembles the package with ``dpkg-deb`` and ``build`` runs it all. Nothing here ships in
the appliance's wheel.
"""
