"""The client side of the ``tether`` command: ``chat``, ``complete`` and ``models``.

``api`` speaks HTTP + SSE to any OpenAI-compatible server, ``chat`` is the terminal chat
loop, ``local`` runs a server in this process when the user gives no ``--url``, and
``health`` waits until a server process the caller started answers ``/health``.
"""
