"""The client side of the ``tether`` command: ``chat``, ``complete`` and ``models``.

``api`` speaks HTTP + SSE to any OpenAI-compatible server, ``chat`` is the terminal chat
loop, and ``local`` runs a server in this process when the user gives no ``--url``.
"""
